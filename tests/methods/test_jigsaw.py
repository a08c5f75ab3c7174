"""Jigsaw: the permutation set's smallest Hamming distance, the tiles (cut, jittered, shuffled
and put back), the loss against a NumPy cross-entropy, config errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.config import ConfigError
from jssl.methods import TrainInfo
from jssl.methods import jigsaw
from tiny import cross_entropy, tiny_config

INFO = TrainInfo(num_examples=64, num_classes=10, image_channels=1, num_steps=10)


def test_permutation_set_has_the_claimed_smallest_hamming_distance():
  perms = jigsaw.permutation_set(9, 100, 0)
  assert perms.shape == (100, 9)
  assert all(sorted(p) == list(range(9)) for p in perms.tolist())  # permutations
  assert len({tuple(p) for p in perms.tolist()}) == 100  # distinct
  # Every pair differs in at least 6 of the 9 positions (a random set of 100: 3).
  assert jigsaw.min_hamming_distance(perms) == 6
  random_set = np.array([np.random.default_rng(i).permutation(9) for i in range(100)])
  assert jigsaw.min_hamming_distance(random_set) < 6
  np.testing.assert_array_equal(jigsaw.permutation_set(9, 100, 0), perms)  # fixed by the seed
  # 4 tiles: 6 permutations, each pair differing in at least 3 places.
  assert jigsaw.min_hamming_distance(jigsaw.permutation_set(4, 6, 0)) == 3
  with pytest.raises(ValueError, match='only 24'):
    jigsaw.permutation_set(4, 25, 0)


def test_tiles_are_the_cells_at_their_offsets():
  image = jnp.arange(9 * 9 * 2, dtype=jnp.float32).reshape(9, 9, 2)
  offsets = jnp.array([[0, 0], [1, 0], [0, 1], [1, 1], [0, 0], [1, 1], [0, 1], [1, 0], [0, 0]])
  tiles = jigsaw.cut_tiles(image, offsets, grid=3, tile=2)
  assert tiles.shape == (9, 2, 2, 2)
  for k in range(9):
    row, col = divmod(k, 3)
    top, left = 3 * row + int(offsets[k, 0]), 3 * col + int(offsets[k, 1])
    np.testing.assert_array_equal(tiles[k], image[top:top + 2, left:left + 2])


def _method(**section):
  config = tiny_config('jigsaw', **{'num_permutations': 10, **section})
  return config, jigsaw.create(config, INFO)


def test_prepare_shuffles_tiles_by_the_drawn_permutation():
  config, method = _method()
  images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (8, 8, 8, 1)), jnp.uint8)
  batch = {'image': images, 'label': jnp.zeros(8, jnp.int32), 'index': jnp.arange(8)}
  inputs = jax.jit(method.prepare)(jax.random.key(3), batch, {})
  tiles, labels = np.asarray(inputs['tiles']), np.asarray(inputs['label'])
  size = config.dataset.image_size
  tile = int(round(size // 3 * config.jigsaw.tile_fraction))
  assert tiles.shape == (8, 9, tile, tile, 1) and labels.shape == (8,)
  assert labels.min() >= 0 and labels.max() < 10 and len(set(labels.tolist())) > 1
  perms = jigsaw.permutation_set(9, 10, 0)
  # The view the puzzle was cut from (prepare's first sub-key, as prepare splits it).
  view_key, _ = jax.random.split(jax.random.key(3))
  (view,) = jax.jit(jigsaw.augment.augment_views, static_argnums=2)(view_key, images,
                                                                     method.views)
  view = np.asarray(view)
  cell = size // 3
  for b in range(8):
    # Putting the tiles back with the inverse permutation gives tile k = a tile x tile block
    # of cell k of the view, at an offset within the gap.
    restored = np.empty_like(tiles[b])
    restored[perms[labels[b]]] = tiles[b]
    for k in range(9):
      row, col = divmod(k, 3)
      cell_pixels = view[b, row * cell:(row + 1) * cell, col * cell:(col + 1) * cell]
      matches = [(dy, dx) for dy in range(cell - tile + 1) for dx in range(cell - tile + 1)
                 if np.allclose(cell_pixels[dy:dy + tile, dx:dx + tile], restored[k], atol=1e-5)]
      assert matches, (b, k)
  # A fresh key draws other puzzles.
  again = jax.jit(method.prepare)(jax.random.key(4), batch, {})
  assert not np.array_equal(np.asarray(again['label']), labels)


def test_loss_is_the_cross_entropy_of_the_permutation_index():
  config, method = _method()
  size = config.dataset.image_size
  images = jnp.asarray(np.random.default_rng(1).integers(0, 256, (8, size, size, 1)), jnp.uint8)
  params, batch_stats, extra = jax.jit(method.init)(jax.random.key(0), images / 255.0)
  batch = {'image': images, 'label': jnp.zeros(8, jnp.int32), 'index': jnp.arange(8)}
  inputs = jax.jit(method.prepare)(jax.random.key(3), batch, {})
  value, out = jax.jit(method.loss)(params, batch_stats, extra, inputs, jnp.int32(0),
                                    jax.random.key(2))
  model = jigsaw.build_model(config)
  (_, logits), _ = jax.jit(lambda p, t: model.apply(
      {'params': p, 'batch_stats': batch_stats}, t, train=True, mutable=['batch_stats']))(
          params, inputs['tiles'])
  logits = np.asarray(logits, np.float64)
  labels = np.asarray(inputs['label'])
  np.testing.assert_allclose(value, cross_entropy(logits, labels), rtol=1e-5)
  np.testing.assert_allclose(out.metrics['jigsaw_accuracy'], np.mean(logits.argmax(1) == labels))
  assert out.features is None and not method.online_probe
  # The representation is the encoder on whole images.
  features = jax.jit(method.encode)(params, batch_stats, images / 255.0)
  assert features.shape == (8, method.features_dim)


@pytest.mark.parametrize('field, value, message', [
    ('jigsaw.grid', 1, 'grid=1 must be an integer >= 2'),
    ('jigsaw.num_permutations', 1, 'num_permutations=1 must be between 2'),
    ('jigsaw.tile_fraction', 0.0, 'tile_fraction=0.0 must be in'),
    ('dataset.image_size', 9, 'use an image size of at least 12'),
])
def test_bad_settings_are_clear_errors(field, value, message):
  config = tiny_config('jigsaw', num_permutations=10)
  parent, _, key = field.rpartition('.')
  config[parent][key] = value
  with pytest.raises(ConfigError, match=message):
    jigsaw.create(config, INFO)
