"""The masked-LM loss (`jssl.losses.mlm_loss`): against a naive float64 loop, its gradients
against the analytic softmax gradient and finite differences, and on 8 simulated devices
against one device (the normaliser is the number of selected positions of the *global*
batch: a per-device mean fails there when the devices hold different numbers of them)."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

from jssl.losses import mlm_loss
from sharding_check import assert_sharded_equals_single


def naive_mlm_loss(logits, targets, weights):
  logits = np.asarray(logits, np.float64)
  total, count = 0.0, 0.0
  for b in range(logits.shape[0]):
    for t in range(logits.shape[1]):
      row = logits[b, t]
      log_z = np.log(np.sum(np.exp(row - row.max()))) + row.max()
      total += float(weights[b, t]) * (log_z - row[targets[b, t]])
      count += float(weights[b, t])
  return total / max(count, 1.0)


def _inputs(seed, batch=16, length=8, vocab=11, rate=0.3):
  rng = np.random.default_rng(seed)
  logits = rng.normal(scale=3.0, size=(batch, length, vocab)).astype(np.float32)
  targets = rng.integers(0, vocab, size=(batch, length)).astype(np.int32)
  weights = (rng.random((batch, length)) < rate).astype(np.float32)
  return logits, targets, weights


def test_matches_a_naive_loop():
  for seed in range(3):
    logits, targets, weights = _inputs(seed)
    got = float(jax.jit(mlm_loss)(logits, targets, weights))
    np.testing.assert_allclose(got, naive_mlm_loss(logits, targets, weights), rtol=1e-5)
  # Large logits are handled stably (log_softmax, not exp then log).
  logits, targets, weights = _inputs(3)
  got = float(mlm_loss(logits * 100.0, targets, weights))
  np.testing.assert_allclose(got, naive_mlm_loss(logits * 100.0, targets, weights), rtol=1e-5)
  # No selected position: 0, not NaN.
  assert float(mlm_loss(logits, targets, np.zeros_like(weights))) == 0.0
  # Unselected positions do not count, whatever their logits.
  changed = np.where(weights[..., None] > 0, logits, 1e4).astype(np.float32)
  np.testing.assert_allclose(float(mlm_loss(changed, targets, weights)),
                             float(mlm_loss(logits, targets, weights)), rtol=1e-6)


def test_gradients():
  logits, targets, weights = _inputs(4, batch=4, length=5, vocab=7)
  grad = np.asarray(jax.grad(mlm_loss)(logits, targets, weights), np.float64)
  z = np.asarray(logits, np.float64)
  softmax = np.exp(z - z.max(-1, keepdims=True))
  softmax /= softmax.sum(-1, keepdims=True)
  onehot = np.eye(z.shape[-1])[targets]
  want = (softmax - onehot) * weights[..., None] / weights.sum()
  np.testing.assert_allclose(grad, want, atol=1e-6)
  # Finite differences (float32, so loose tolerances) of the loss in logits and in weights.
  check_grads(lambda l: mlm_loss(l, targets, weights), (logits,), order=1, modes=['rev'],
              eps=1e-2, atol=2e-3, rtol=2e-3)
  soft = np.random.default_rng(5).random(weights.shape).astype(np.float32) + 0.5
  check_grads(lambda w: mlm_loss(logits, targets, w), (soft,), order=1, modes=['rev'],
              eps=1e-2, atol=2e-3, rtol=2e-3)


def test_eight_devices_equal_one():
  logits, targets, weights = _inputs(6, batch=16, length=8)
  # Uneven counts per device: devices 0-1 hold no selected position at all.
  weights[:4] = 0.0
  weights[4:6] = 1.0
  assert_sharded_equals_single(
      mlm_loss, (logits, targets, weights),
      placements=[(P('data'), P('data'), P('data')),
                  (P(None, 'data'), P(None, 'data'), P(None, 'data')),
                  (P('data'), P(), P(None, 'data'))],
      argnums=(0, 2))
