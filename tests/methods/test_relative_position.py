"""Relative patch position: the labels against a hand-made image whose cells are numbered, the
gap and jitter, the loss against a NumPy cross-entropy, config errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.config import ConfigError
from jssl.methods import TrainInfo
from jssl.methods import common
from jssl.methods import relative_position
from tiny import cross_entropy, initialise, tiny_config

INFO = TrainInfo(num_examples=64, num_classes=10, image_channels=1, num_steps=10)


def test_labels_name_the_neighbour_cell_as_drawn():
  # A 12x12 image whose 3x3 cells hold their own number (raster order): the neighbour tile's
  # value says which cell it came from.
  cells = np.arange(9, dtype=np.float32).reshape(3, 3)
  image = jnp.asarray(np.kron(cells, np.ones((4, 4), np.float32))[..., None])
  # Hand-made: label -> (row, col) of the neighbour around the centre (1, 1).
  where = {0: (0, 0), 1: (0, 1), 2: (0, 2), 3: (1, 0), 4: (1, 2), 5: (2, 0), 6: (2, 1),
           7: (2, 2)}
  seen = set()
  for seed in range(40):
    tiles, label = relative_position.patch_pair(jax.random.key(seed), image, tile=3)
    assert tiles.shape == (2, 3, 3, 1)
    assert np.all(np.asarray(tiles[0]) == 4)  # the centre cell, whatever its jitter
    row, col = where[int(label)]
    assert np.all(np.asarray(tiles[1]) == 3 * row + col), int(label)
    seen.add(int(label))
  assert seen == set(range(8))


def test_tiles_are_jittered_inside_their_cells():
  ramp = jnp.arange(144, dtype=jnp.float32).reshape(12, 12, 1)
  corners = {float(relative_position.patch_pair(jax.random.key(s), ramp, tile=3)[0][0, 0, 0, 0])
             for s in range(30)}
  # The centre cell spans rows/cols 4..7; a 3-pixel tile starts at offset 0 or 1 in each.
  assert corners <= {4 * 12 + 4.0, 4 * 12 + 5.0, 5 * 12 + 4.0, 5 * 12 + 5.0}
  assert len(corners) > 1


def test_loss_is_the_cross_entropy_of_the_position():
  config = tiny_config('relative_position', image_size=12)
  method = relative_position.create(config, INFO)
  params, batch_stats, extra, _ = initialise(method)
  images = jax.random.uniform(jax.random.key(0), (8, 12, 12, 1)) * 255
  model = relative_position.build_model(config)

  @jax.jit
  def both(params, images):
    inputs = method.prepare(jax.random.key(1), {'image': images}, {})
    value, out = method.loss(params, batch_stats, extra, inputs, jnp.int32(0), jax.random.key(2))
    (_, logits), _ = common.apply_train(model, params, batch_stats, inputs['tiles'])
    return inputs, value, out, logits

  inputs, value, out, logits = both(params, images.astype(jnp.uint8))
  assert inputs['tiles'].shape == (8, 2, 3, 3, 1) and inputs['label'].shape == (8,)
  np.testing.assert_allclose(value, cross_entropy(logits, inputs['label']), rtol=1e-5)
  assert logits.shape == (8, 8) and out.features is None


@pytest.mark.parametrize('field, value, message', [
    ('relative_position.tile_fraction', 0.0, 'tile_fraction=0.0 must be in'),
    ('dataset.image_size', 9, 'image_size=9 gives 3-pixel cells'),
])
def test_bad_settings_are_clear_errors(field, value, message):
  config = tiny_config('relative_position')
  parent, _, key = field.rpartition('.')
  config[parent][key] = value
  with pytest.raises(ConfigError, match=message):
    relative_position.create(config, INFO)
