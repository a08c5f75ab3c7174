"""Triplet method: negative mining (hard, semi-hard with its fallback, random) on hand-built and
random distance matrices, both losses against NumPy references on the same embeddings, config
errors and a short digits run."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.config import ConfigError, load_config
from jssl.methods import Batch, TrainInfo, common, triplet
from tiny import BATCH, tiny_config

INFO = TrainInfo(num_examples=64, num_classes=10, image_channels=1, num_steps=10)

# Row i: distances from anchor i to candidates 0..3; the diagonal is the positive distance.
DISTANCES = np.array([
    [0.5, 0.2, 0.9, 0.6],  # hard 1; farther than 0.5: 0.9, 0.6 -> semi-hard 3
    [0.1, 0.3, 0.4, 1.0],  # hard 0; farther than 0.3: 0.4, 1.0 -> semi-hard 2
    [0.3, 0.2, 1.5, 0.1],  # hard 3; none farther than 1.5 -> falls back to hard 3
    [0.7, 0.8, 0.9, 0.0],  # hard 0; all farther than 0.0 -> semi-hard 0
], np.float32)


def _naive_mining(distances, mining):
  out = []
  for i, row in enumerate(distances):
    others = [j for j in range(len(row)) if j != i]
    hard = min(others, key=lambda j: row[j])
    farther = [j for j in others if row[j] > row[i]]
    if mining == 'semi_hard' and farther:
      out.append(min(farther, key=lambda j: row[j]))
    else:
      out.append(hard)
  return out


def test_hard_and_semi_hard_on_a_hand_built_matrix():
  np.testing.assert_array_equal(triplet.mine_negatives(DISTANCES, mining='hard'), [1, 0, 3, 0])
  np.testing.assert_array_equal(triplet.mine_negatives(DISTANCES, mining='semi_hard'),
                                [3, 2, 3, 0])


@pytest.mark.parametrize('mining', ['hard', 'semi_hard'])
def test_mining_matches_a_loop_on_random_distances(mining):
  distances = np.asarray(jax.random.uniform(jax.random.key(3), (12, 12)))
  mined = np.asarray(triplet.mine_negatives(jnp.asarray(distances), mining=mining))
  np.testing.assert_array_equal(mined, _naive_mining(distances, mining))
  assert np.all(mined != np.arange(12))


def test_random_mining_is_uniform_over_the_others():
  keys = jax.random.split(jax.random.key(0), 4000)
  draws = np.asarray(jax.vmap(
      lambda k: triplet.mine_negatives(jnp.zeros((4, 4)), mining='random', rng=k))(keys))
  assert draws.shape == (4000, 4)
  for i in range(4):
    counts = np.bincount(draws[:, i], minlength=4)
    assert counts[i] == 0
    others = np.delete(counts, i)
    np.testing.assert_allclose(others / 4000, 1 / 3, atol=0.03)


def test_the_choice_carries_no_gradient():
  def picked_sum(distances):
    j = triplet.mine_negatives(distances, mining='hard')
    return jnp.sum(distances[jnp.arange(4), j])

  grad = np.asarray(jax.grad(picked_sum)(jnp.asarray(DISTANCES)))
  expected = np.zeros((4, 4))
  expected[np.arange(4), [1, 0, 3, 0]] = 1.0  # only through the gathered entries
  np.testing.assert_array_equal(grad, expected)


def test_mining_rejects_non_square_input():
  with pytest.raises(ValueError, match='square'):
    triplet.mine_negatives(jnp.zeros((3, 4)), mining='hard')


def _config(**overrides):
  return tiny_config('triplet', **overrides)


def _run_loss(config):
  """(loss, metrics, unit z1, unit z2) of the method on random 8x8 views."""
  method = triplet.create(config, INFO)
  views = tuple(jax.random.uniform(k, (BATCH, 8, 8, 1))
                for k in jax.random.split(jax.random.key(0), 2))
  batch = Batch(views=views, label=jnp.zeros(BATCH, jnp.int32), index=jnp.arange(BATCH))
  params, batch_stats, extra = jax.jit(method.init)(jax.random.key(1), views[0])
  value, out = jax.jit(method.loss)(params, batch_stats, extra, batch, 0, jax.random.key(2))
  model = common.encoder_projector(config)
  project = jax.jit(lambda p, s, v: common.apply_train(model, p, s, common.interleave(v))[0][1])
  z = project(params, batch_stats, views)
  z1, z2 = (np.asarray(v, np.float64) for v in common.deinterleave(z, 2))
  z1 /= np.linalg.norm(z1, axis=-1, keepdims=True)
  z2 /= np.linalg.norm(z2, axis=-1, keepdims=True)
  assert out.features.shape == (BATCH, method.features_dim)
  return float(value), out.metrics, z1, z2


@pytest.mark.parametrize('mining', ['hard', 'semi_hard'])
def test_triplet_loss_against_numpy(mining):
  value, metrics, z1, z2 = _run_loss(_config(mining=mining, margin=0.5))
  distances = np.linalg.norm(z1[:, None] - z2[None], axis=-1)
  j = _naive_mining(distances, mining)
  d_pos = np.diagonal(distances)
  d_neg = distances[np.arange(BATCH), j]
  np.testing.assert_allclose(value, np.mean(np.maximum(d_pos - d_neg + 0.5, 0.0)), rtol=1e-4)
  np.testing.assert_allclose(metrics['negative_distance'], d_neg.mean(), rtol=1e-4)


def test_margin_contrastive_loss_against_numpy():
  value, _, z1, z2 = _run_loss(_config(loss='margin_contrastive', mining='hard', margin=1.0))
  distances = np.linalg.norm(z1[:, None] - z2[None], axis=-1)
  j = _naive_mining(distances, 'hard')
  pull = 0.5 * np.diagonal(distances) ** 2  # B positive pairs
  push = 0.5 * np.maximum(1.0 - distances[np.arange(BATCH), j], 0.0) ** 2  # B negative pairs
  np.testing.assert_allclose(value, np.mean(np.concatenate([pull, push])), rtol=1e-4)


@pytest.mark.parametrize('field, value, match', [
    ('loss', 'lifted', 'config.triplet.loss'),
    ('mining', 'hardest', 'config.triplet.mining'),
    ('margin', 0.0, 'config.triplet.margin'),
])
def test_config_errors(field, value, match):
  with pytest.raises(ConfigError, match=match):
    triplet.create(_config(**{field: value}), INFO)


def test_margin_variant():
  config = load_config('experiments/configs/triplet.py:digits_margin')
  assert config.triplet.loss == 'margin_contrastive' and config.triplet.margin == 1.0
  with pytest.raises(ValueError, match='digits_margin'):
    load_config('experiments/configs/triplet.py:nope')
