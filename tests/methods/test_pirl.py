"""PIRL: the jigsaw transform (tiles from the right cells, a permutation, deterministic), the
two-term NCE loss against a NumPy reference, memory-bank updates with f(v_I), stop-gradients,
config errors and a short digits run."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.config import ConfigError
from jssl.config import load_config
from jssl.methods import Batch
from jssl.methods import TrainInfo
from jssl.methods import common
from jssl.methods import pirl
from tiny import tiny_config

BATCH, NUM_EXAMPLES, K, TAU = 8, 40, 6, 0.5
INFO = TrainInfo(num_examples=NUM_EXAMPLES, num_classes=10, image_channels=1, num_steps=10)


def _position_images(batch, height, width, channels=2):
  """Pixel value = 10000 * example + 100 * row + column (+ 0.5 in channel 1)."""
  b, y, x, c = np.meshgrid(np.arange(batch), np.arange(height), np.arange(width),
                           np.arange(channels), indexing='ij')
  return jnp.asarray(10000 * b + 100 * y + x + 0.5 * c, jnp.float32)


# One batch size and grid throughout, so the random draws compile once (slow on CPU).
@pytest.mark.parametrize('size,tile', [(16, 4), (11, 2), (9, 3)])
def test_jigsaw_tiles_come_from_their_cells(size, tile):
  grid, n, batch = 3, 9, BATCH
  images = _position_images(batch, size, size)
  tiles, perm = pirl.jigsaw(jax.random.key(0), images, grid=grid, tile_size=tile)
  assert tiles.shape == (batch, n, tile, tile, 2) and perm.shape == (batch, n)
  assert perm.dtype == jnp.int32
  tiles, perm, cell = np.asarray(tiles), np.asarray(perm), size // grid
  for b in range(batch):
    assert sorted(perm[b]) == list(range(n))
    for j in range(n):
      corner = tiles[b, j, 0, 0, 0]
      assert corner // 10000 == b
      top, left = int(corner % 10000) // 100, int(corner % 100)
      row, col = divmod(int(perm[b, j]), grid)
      # Inside cell (row, col) of the grid ...
      assert row * cell <= top and top + tile <= (row + 1) * cell
      assert col * cell <= left and left + tile <= (col + 1) * cell
      # ... and a contiguous block of the image, every channel.
      np.testing.assert_array_equal(tiles[b, j],
                                    np.asarray(images)[b, top:top + tile, left:left + tile])


def test_jigsaw_is_random_but_deterministic_given_the_key():
  images = _position_images(BATCH, 16, 16, channels=1)
  a_tiles, a_perm = pirl.jigsaw(jax.random.key(3), images, grid=3, tile_size=4)
  b_tiles, b_perm = pirl.jigsaw(jax.random.key(3), images, grid=3, tile_size=4)
  np.testing.assert_array_equal(a_tiles, b_tiles)
  np.testing.assert_array_equal(a_perm, b_perm)
  c_tiles, c_perm = pirl.jigsaw(jax.random.key(4), images, grid=3, tile_size=4)
  assert not np.array_equal(a_perm, c_perm) and not np.array_equal(a_tiles, c_tiles)
  # Permutations differ between examples; offsets cover the whole range 0..cell - tile = 0..1.
  assert len({tuple(p) for p in np.asarray(a_perm)}) == BATCH
  corners = np.asarray(a_tiles)[:, :, 0, 0, 0] % 10000
  cells = np.asarray(a_perm)
  offsets_y = corners // 100 - (cells // 3) * 5
  offsets_x = corners % 100 - (cells % 3) * 5
  assert set(offsets_y.ravel()) == {0, 1} and set(offsets_x.ravel()) == {0, 1}


def test_jigsaw_rejects_tiles_larger_than_cells():
  with pytest.raises(ValueError, match=r'tile_size=6 must be in \[1, 5\]'):
    pirl.jigsaw(jax.random.key(0), jnp.zeros((2, 16, 16, 1)), grid=3, tile_size=6)


@pytest.mark.parametrize('variant,tile', [('digits', 4), ('fashion_mnist', 7), ('cifar10', 8)])
def test_tile_size_of_each_config(variant, tile):
  assert pirl.tile_size_for(load_config(f'experiments/configs/pirl.py:{variant}')) == tile


def _config(**overrides):
  config = tiny_config('pirl', image_size=12)  # 4-px cells, 3-px tiles
  config.pirl.objective = 'nce'
  config.pirl.num_negatives = K
  config.pirl.temperature = TAU
  for key, value in overrides.items():
    config.pirl[key] = value
  return config


def _setup(config):
  method = pirl.create(config, INFO)
  views = tuple(jax.random.uniform(k, (BATCH, 12, 12, 1)) for k in jax.random.split(
      jax.random.key(0), 2))
  params, batch_stats, extra = jax.jit(method.init)(jax.random.key(1), views[0])
  index = jnp.array([3, 0, 17, 39, 8, 22, 5, 30])
  batch = Batch(views=views, label=jnp.zeros(BATCH, jnp.int32), index=index)
  return method, params, batch_stats, extra, batch


def _loss_and_grads(method):
  """One compiled call: (loss, LossOutput, (grads w.r.t. params, grads w.r.t. the bank))."""

  def run(params, batch_stats, extra, batch, step, rng):
    def loss_of(params, bank):
      return method.loss(params, batch_stats, {**extra, 'bank': bank}, batch, step, rng)

    (value, out), grads = jax.value_and_grad(loss_of, argnums=(0, 1), has_aux=True)(
        params, extra['bank'])
    return value, out, grads

  return jax.jit(run)


@jax.jit
def _reference_outputs(params, batch_stats, views, rng):
  """f(v_I), the tile representations [B, 9, F] and the permutation, recomputed outside the
  method: the jigsaw of view 1 and the encoder on all tiles in one call."""
  model = common.encoder_projector(_config())
  network = {k: params[k] for k in ('encoder', 'projector')}
  (_, z_image, _), stats = common.apply_train(model, network, batch_stats, views[0])
  tiles, perm = pirl.jigsaw(jax.random.split(rng)[0], views[1], grid=3, tile_size=3)
  tile_h, _ = common.apply_train(model, network, stats, tiles.reshape(BATCH * 9, 3, 3, 1),
                                 method=lambda m, x, train: m.encoder(x, train=train))
  return z_image, tile_h.reshape(BATCH, 9, -1), perm


def _assert_bank_gets_no_gradient(grads, parts):
  grad_params, grad_bank = grads
  np.testing.assert_array_equal(grad_bank, 0.0)
  for part in parts:
    norm = sum(float(jnp.sum(g**2)) for g in jax.tree_util.tree_leaves(grad_params[part]))
    assert norm > 0.0, part


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _jigsaw_head(g, tile_h):
  """NumPy g: each tile [B, F] projected, concatenated in the given order, projected again."""
  tile_h = np.asarray(tile_h, np.float64)
  projected = [tile_h[:, j] @ np.asarray(g['tile_projection']['kernel'])
               + np.asarray(g['tile_projection']['bias']) for j in range(tile_h.shape[1])]
  return (np.concatenate(projected, -1) @ np.asarray(g['dense_out']['kernel'])
          + np.asarray(g['dense_out']['bias']))


def _similarities(x, positive, negatives):
  q = _unit(x)
  return np.sum(q * positive, -1), np.einsum('bd,bkd->bk', q, negatives)


def _naive_nce(x, positive, negatives, log_z):
  """L_NCE with h = P / (P + K/N), P = exp(s/tau - log Z)."""
  pos, neg = _similarities(x, positive, negatives)
  noise, total = K / NUM_EXAMPLES, 0.0
  for b in range(BATCH):
    p = math.exp(pos[b] / TAU - log_z)
    total -= math.log(p / (p + noise))
    for k in range(K):
      p = math.exp(neg[b, k] / TAU - log_z)
      total -= math.log(noise / (p + noise))
  return total / BATCH


def _naive_softmax(x, positive, negatives):
  pos, neg = _similarities(x, positive, negatives)
  logits = np.concatenate([pos[:, None], neg], -1) / TAU
  return np.mean(np.log(np.sum(np.exp(logits), -1)) - logits[:, 0])


def _reference(params, batch_stats, extra, batch, rng):
  """NumPy f(v_I), g(v_It), tile features, permutation, positives and negatives."""
  z_image, tile_h, perm = _reference_outputs(params, batch_stats, batch.views, rng)
  tile_h = np.asarray(tile_h)
  z_jigsaw = _jigsaw_head(params['jigsaw_projector'], tile_h)
  bank = np.asarray(extra['bank'], np.float64)
  rows = np.asarray(jax.random.randint(jax.random.split(rng)[1], (BATCH, K), 0, NUM_EXAMPLES))
  return (np.asarray(z_image, np.float64), z_jigsaw, tile_h, np.asarray(perm),
          bank[np.asarray(batch.index)], bank[rows])


def test_nce_matches_reference_estimates_z_once_and_bank_follows_f():
  config = _config(jigsaw_weight=0.3)
  method, params, batch_stats, extra, batch = _setup(config)
  assert set(params) == {'encoder', 'projector', 'jigsaw_projector'}
  assert set(extra) == {'bank', 'log_partition', 'partition_set'}
  assert extra['bank'].shape == (NUM_EXAMPLES, 8)
  rng = jax.random.key(7)
  loss = _loss_and_grads(method)
  value, out, grads = loss(params, batch_stats, extra, batch, jnp.int32(0), rng)
  _assert_bank_gets_no_gradient(grads, ('encoder', 'projector', 'jigsaw_projector'))

  z_image, z_jigsaw, tile_h, perm, positive, negatives = _reference(
      params, batch_stats, extra, batch, rng)
  # log Z = log(N * mean exp(s / tau)) over both terms' similarities.
  sims = [np.concatenate([p[:, None], n], -1) for p, n in (
      _similarities(z_jigsaw, positive, negatives), _similarities(z_image, positive, negatives))]
  log_z = math.log(NUM_EXAMPLES * np.mean(np.exp(np.stack(sims) / TAU)))
  np.testing.assert_allclose(out.extra['log_partition'], log_z, rtol=1e-5)
  assert bool(out.extra['partition_set'])

  loss_jigsaw = _naive_nce(z_jigsaw, positive, negatives, log_z)
  loss_image = _naive_nce(z_image, positive, negatives, log_z)
  np.testing.assert_allclose(out.metrics['loss_image'], loss_image, rtol=1e-4)
  np.testing.assert_allclose(out.metrics['loss_jigsaw'], loss_jigsaw, rtol=1e-4)
  np.testing.assert_allclose(value, 0.3 * loss_jigsaw + 0.7 * loss_image, rtol=1e-4)
  np.testing.assert_allclose(out.metrics['positive_similarity_image'],
                             np.mean(np.sum(_unit(z_image) * positive, -1)), atol=1e-5)
  # The test can tell the order apart: tiles put back in cell order give another loss.
  cell_order = np.take_along_axis(tile_h, np.argsort(perm, 1)[:, :, None], 1)
  other = _naive_nce(_jigsaw_head(params['jigsaw_projector'], cell_order), positive,
                     negatives, log_z)
  assert abs(other - loss_jigsaw) > 1e-3

  # The bank rows of the batch move halfway towards f(v_I) (not g); others are unchanged.
  bank, new = np.asarray(extra['bank']), np.asarray(out.extra['bank'])
  index = np.asarray(batch.index)
  np.testing.assert_allclose(new[index], _unit(0.5 * bank[index] + 0.5 * _unit(z_image)),
                             atol=1e-5)
  others = np.setdiff1d(np.arange(NUM_EXAMPLES), index)
  np.testing.assert_array_equal(new[others], bank[others])

  # The next step keeps Z.
  _, out2, _ = loss(params, batch_stats, out.extra, batch, jnp.int32(1), jax.random.key(8))
  np.testing.assert_array_equal(out2.extra['log_partition'], out.extra['log_partition'])


@pytest.mark.parametrize('objective,log_partition', [('nce', 0.0), ('softmax', None)])
def test_fixed_partition_and_softmax_objectives(objective, log_partition):
  config = _config(objective=objective, log_partition=log_partition)
  method, params, batch_stats, extra, batch = _setup(config)
  assert set(extra) == {'bank'}
  rng = jax.random.key(5)
  value, out = jax.jit(method.loss)(params, batch_stats, extra, batch, jnp.int32(0), rng)
  z_image, z_jigsaw, _, _, positive, negatives = _reference(
      params, batch_stats, extra, batch, rng)
  if objective == 'nce':  # the printed formula: h = exp(s/tau) / (exp(s/tau) + K/N)
    expected = [_naive_nce(z, positive, negatives, 0.0) for z in (z_jigsaw, z_image)]
  else:
    expected = [_naive_softmax(z, positive, negatives) for z in (z_jigsaw, z_image)]
  np.testing.assert_allclose(out.metrics['loss_jigsaw'], expected[0], rtol=1e-4)
  np.testing.assert_allclose(out.metrics['loss_image'], expected[1], rtol=1e-4)
  np.testing.assert_allclose(value, 0.5 * sum(expected), rtol=1e-4)
  assert set(out.extra) == {'bank'}


@pytest.mark.parametrize('field,value,match', [
    ('num_negatives', 0, r'config\.pirl\.num_negatives=0 must be positive'),
    ('momentum', 1.0, r'config\.pirl\.momentum=1\.0 must be in \[0, 1\)'),
    ('jigsaw_weight', 1.5, r'config\.pirl\.jigsaw_weight=1\.5 must be in \[0, 1\]'),
    ('grid', 1, r'config\.pirl\.grid=1 must be between 2'),
    ('tile_fraction', 0.0, r'config\.pirl\.tile_fraction=0\.0 must be in \(0, 1\]'),
    ('temperature', -1.0, r'config\.pirl\.temperature=-1\.0 must be positive'),
    ('objective', 'infonce', r"config\.pirl\.objective='infonce' is unknown"),
    ('log_partition', float('nan'), r'config\.pirl\.log_partition=nan must be a finite'),
])
def test_bad_config_names_the_field(field, value, match):
  with pytest.raises(ConfigError, match=match):
    pirl.create(_config(**{field: value}), INFO)
