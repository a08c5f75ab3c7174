"""InstDisc / NPID: the NCE loss with its one-off partition estimate against a NumPy reference,
the softmax objective, memory-bank updates, stop-gradients, config errors, a short digits run."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.config import ConfigError
from jssl.methods import Batch
from jssl.methods import TrainInfo
from jssl.methods import common
from jssl.methods import instdisc
from jssl.methods import memory
from tiny import tiny_config

BATCH, NUM_EXAMPLES, K, TAU = 8, 40, 6, 0.5
INFO = TrainInfo(num_examples=NUM_EXAMPLES, num_classes=10, image_channels=1, num_steps=10)


def _config(**overrides):
  config = tiny_config('instdisc', image_size=8)
  config.instdisc.objective = 'nce'
  config.instdisc.num_negatives = K
  config.instdisc.temperature = TAU
  for key, value in overrides.items():
    config.instdisc[key] = value
  return config


def _setup(config, seed=0):
  method = instdisc.create(config, INFO)
  view = jax.random.uniform(jax.random.key(seed), (BATCH, 8, 8, 1))
  params, batch_stats, extra = jax.jit(method.init)(jax.random.key(1), view)
  index = jnp.array([3, 0, 17, 39, 8, 22, 5, 30])
  batch = Batch(views=(view,), label=jnp.zeros(BATCH, jnp.int32), index=index)
  return method, params, batch_stats, extra, batch


def _embedding(config, params, batch_stats, view):
  model = common.encoder_projector(config)
  (_, v, _), _ = jax.jit(lambda p, s, x: common.apply_train(model, p, s, x))(
      params, batch_stats, view)
  return np.asarray(v, np.float64)


def _loss_and_grads(method):
  """One compiled call: (loss, LossOutput, (grads w.r.t. params, grads w.r.t. the bank))."""

  def run(params, batch_stats, extra, batch, step, rng):
    def loss_of(params, bank):
      return method.loss(params, batch_stats, {**extra, 'bank': bank}, batch, step, rng)

    (value, out), grads = jax.value_and_grad(loss_of, argnums=(0, 1), has_aux=True)(
        params, extra['bank'])
    return value, out, grads

  return jax.jit(run)


def _assert_bank_gets_no_gradient(grads, parts):
  grad_params, grad_bank = grads
  np.testing.assert_array_equal(grad_bank, 0.0)
  for part in parts:
    norm = sum(float(jnp.sum(g**2)) for g in jax.tree_util.tree_leaves(grad_params[part]))
    assert norm > 0.0, part


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _similarities(v, bank, index, rng):
  """NumPy cosines of v with its bank row and with the K rows the loss samples."""
  rows = np.asarray(jax.random.randint(rng, (BATCH, K), 0, NUM_EXAMPLES))
  bank = np.asarray(bank, np.float64)
  q = _unit(v)
  pos = np.sum(q * bank[np.asarray(index)], -1)
  neg = np.einsum('bd,bkd->bk', q, bank[rows])
  return pos, neg


def _naive_nce(pos, neg, log_z):
  total = 0.0
  noise = K / NUM_EXAMPLES
  for b in range(BATCH):
    p = math.exp(pos[b] / TAU - log_z)
    total -= math.log(p / (p + noise))
    for k in range(K):
      p = math.exp(neg[b, k] / TAU - log_z)
      total -= math.log(noise / (p + noise))
  return total / BATCH


def test_init_state():
  method, _, _, extra, _ = _setup(_config())
  assert set(extra) == {'bank', 'log_partition', 'partition_set'}
  assert extra['bank'].shape == (NUM_EXAMPLES, 8)
  np.testing.assert_allclose(np.linalg.norm(extra['bank'], axis=-1), 1.0, rtol=1e-5)
  assert not bool(extra['partition_set'])
  assert len(method.views) == 1


def test_nce_estimates_partition_once_updates_bank_no_gradient():
  config = _config()
  method, params, batch_stats, extra, batch = _setup(config)
  rng = jax.random.key(7)
  loss = _loss_and_grads(method)
  value, out, grads = loss(params, batch_stats, extra, batch, jnp.int32(0), rng)
  _assert_bank_gets_no_gradient(grads, ('encoder', 'projector'))

  v = _embedding(config, params, batch_stats, batch.views[0])
  pos, neg = _similarities(v, extra['bank'], batch.index, rng)
  all_s = np.concatenate([pos[:, None], neg], -1) / TAU
  log_z = math.log(NUM_EXAMPLES * np.mean(np.exp(all_s)))
  np.testing.assert_allclose(out.extra['log_partition'], log_z, rtol=1e-5)
  assert bool(out.extra['partition_set'])
  np.testing.assert_allclose(value, _naive_nce(pos, neg, log_z), rtol=1e-4)
  np.testing.assert_allclose(out.metrics['positive_similarity'], np.mean(pos), atol=1e-5)
  np.testing.assert_allclose(out.metrics['negative_similarity'], np.mean(neg), atol=1e-5)

  # Rows of the batch move halfway (momentum 0.5) towards the unit embeddings; others stay.
  old, new = np.asarray(extra['bank']), np.asarray(out.extra['bank'])
  index = np.asarray(batch.index)
  np.testing.assert_allclose(new[index], _unit(0.5 * old[index] + 0.5 * _unit(v)), atol=1e-5)
  others = np.setdiff1d(np.arange(NUM_EXAMPLES), index)
  np.testing.assert_array_equal(new[others], old[others])

  # Later steps keep Z fixed, even on another batch whose own estimate would differ.
  _, _, _, _, batch2 = _setup(config, seed=5)
  rng2 = jax.random.key(8)
  value2, out2, _ = loss(params, batch_stats, out.extra, batch2, jnp.int32(1), rng2)
  np.testing.assert_array_equal(out2.extra['log_partition'], out.extra['log_partition'])
  v2 = _embedding(config, params, batch_stats, batch2.views[0])
  pos2, neg2 = _similarities(v2, out.extra['bank'], batch2.index, rng2)
  np.testing.assert_allclose(value2, _naive_nce(pos2, neg2, log_z), rtol=1e-4)
  fresh = math.log(NUM_EXAMPLES * np.mean(np.exp(np.concatenate([pos2[:, None], neg2], -1) / TAU)))
  assert abs(fresh - log_z) > 1e-3  # the test could tell a re-estimate apart


def test_softmax_objective_matches_reference():
  config = _config(objective='softmax')
  method, params, batch_stats, extra, batch = _setup(config)
  assert set(extra) == {'bank'}
  rng = jax.random.key(3)
  value, out, grads = _loss_and_grads(method)(params, batch_stats, extra, batch, jnp.int32(0),
                                              rng)
  _assert_bank_gets_no_gradient(grads, ('encoder', 'projector'))
  v = _embedding(config, params, batch_stats, batch.views[0])
  pos, neg = _similarities(v, extra['bank'], batch.index, rng)
  logits = np.concatenate([pos[:, None], neg], -1) / TAU
  expected = np.mean(np.log(np.sum(np.exp(logits), -1)) - logits[:, 0])
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  assert set(out.extra) == {'bank'}


def test_estimate_log_partition_is_log_n_mean_exp():
  q = jnp.array([[1.0, 0.0], [0.0, 2.0]])
  pos = jnp.array([[1.0, 0.0], [0.6, 0.8]])
  neg = jnp.array([[[0.0, 1.0]], [[-1.0, 0.0]]])
  got = instdisc.estimate_log_partition(q, pos, neg, temperature=0.5, num_examples=10)
  s = np.array([1.0, 0.0, 0.8, 0.0]) / 0.5
  np.testing.assert_allclose(got, math.log(10 * np.mean(np.exp(s))), rtol=1e-6)


@pytest.mark.parametrize('field,value,match', [
    ('num_negatives', 0, r'config\.instdisc\.num_negatives=0 must be positive'),
    ('momentum', 1.0, r'config\.instdisc\.momentum=1\.0 must be in \[0, 1\)'),
    ('momentum', -0.1, r'config\.instdisc\.momentum=-0\.1'),
    ('objective', 'nec', r"config\.instdisc\.objective='nec' is unknown.*'nce', 'softmax'"),
    ('temperature', 0.0, r'config\.instdisc\.temperature=0\.0 must be positive'),
])
def test_bad_config_names_the_field(field, value, match):
  with pytest.raises(ConfigError, match=match):
    instdisc.create(_config(**{field: value}), INFO)


def test_memory_helpers_used_as_documented():
  # sample_negatives draws the rows the tests above reproduce with jax.random.randint.
  bank = memory.init_bank(jax.random.key(0), NUM_EXAMPLES, 4)
  rng = jax.random.key(9)
  rows = jax.random.randint(rng, (BATCH, K), 0, NUM_EXAMPLES)
  np.testing.assert_array_equal(memory.sample_negatives(rng, bank, BATCH, K), bank[rows])
