"""`jssl.losses.cpc` against a loop over every prediction, its gradients, its errors, and 8
simulated devices against one."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

from jssl import losses
import sharding_check

RNG = np.random.default_rng(0)


def _naive_cpc(preds, future, temperature, mask):
  """One softmax per counted prediction, over every unmasked encoding of the batch."""
  num_k, batch, steps, _ = preds.shape
  candidates = [(n, s) for n in range(batch) for s in range(steps) if mask[n, s]]
  total, count = 0.0, 0
  for k in range(num_k):
    for b in range(batch):
      for t in range(steps - k - 1):
        if not (mask[b, t] and mask[b, t + k + 1]):
          continue
        scores = {c: float(np.dot(preds[k, b, t], future[c])) / temperature for c in candidates}
        top = max(scores.values())
        log_z = top + math.log(sum(math.exp(v - top) for v in scores.values()))
        total += log_z - scores[(b, t + k + 1)]
        count += 1
  return total / count


def _inputs(num_k=2, batch=3, steps=5, dim=4, scale=1.0):
  preds = RNG.normal(scale=scale, size=(num_k, batch, steps, dim)).astype(np.float32)
  future = RNG.normal(scale=scale, size=(batch, steps, dim)).astype(np.float32)
  return preds, future


def test_cpc_matches_a_loop_over_predictions():
  preds, future = _inputs()
  full = np.ones(future.shape[:2], bool)
  np.testing.assert_allclose(losses.cpc(preds, future), _naive_cpc(preds, future, 1.0, full),
                             rtol=1e-5)
  np.testing.assert_allclose(losses.cpc(preds, future, temperature=0.3),
                             _naive_cpc(preds, future, 0.3, full), rtol=1e-5)
  # Padded sequences: lengths 5, 3 and 1 (the last has no prediction of its own, and its
  # padding is never a negative).
  mask = np.arange(5)[None, :] < np.asarray([5, 3, 1])[:, None]
  np.testing.assert_allclose(losses.cpc(preds, future, mask=mask),
                             _naive_cpc(preds, future, 1.0, mask), rtol=1e-5)
  # Padding's values do not matter.
  noisy = np.where(mask[..., None], future, 1e3)
  np.testing.assert_allclose(losses.cpc(preds, noisy, mask=mask),
                             losses.cpc(preds, future, mask=mask), rtol=1e-6)


def test_cpc_bounds_and_dtype():
  # All scores equal: the loss is log of the number of candidates, B * T.
  preds, future = np.zeros((3, 2, 6, 4), np.float32), np.ones((2, 6, 4), np.float32)
  np.testing.assert_allclose(losses.cpc(preds, future), math.log(12), rtol=1e-6)
  # Predictions that point at their own future alone, with orthogonal encodings: loss -> 0.
  future = np.eye(12, dtype=np.float32).reshape(2, 6, 12) * 50
  preds = np.stack([np.roll(future, -(k + 1), axis=1) for k in range(2)])
  assert float(losses.cpc(preds, future)) < 1e-6
  bf16 = losses.cpc(jnp.asarray(preds, jnp.bfloat16), jnp.asarray(future, jnp.bfloat16))
  assert bf16.dtype == jnp.float32


def test_cpc_gradients():
  preds, future = (x.astype(np.float64) for x in _inputs(num_k=2, batch=2, steps=4, dim=3))
  fn = lambda p, f: losses.cpc(p, f, temperature=0.5)
  check_grads(fn, (preds, future), order=1, modes=['rev'], atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize('preds_shape, future_shape, kwargs, message', [
    ((2, 3, 5), (3, 5, 4), {}, 'must be \\[K, B, T, D\\]'),
    ((2, 3, 5, 4), (3, 6, 4), {}, 'to match'),
    ((5, 3, 5, 4), (3, 5, 4), {}, 'needs T > 5'),
    ((2, 3, 5, 4), (3, 5, 4), {'temperature': 0.0}, 'temperature=0.0 must be > 0'),
    ((2, 3, 5, 4), (3, 5, 4), {'mask': np.ones((3, 4), bool)}, 'mask \\(3, 4\\) must be'),
])
def test_cpc_errors_name_the_problem(preds_shape, future_shape, kwargs, message):
  with pytest.raises(ValueError, match=message):
    losses.cpc(np.zeros(preds_shape, np.float32), np.zeros(future_shape, np.float32), **kwargs)


def test_eight_devices_equal_one():
  preds, future = _inputs(num_k=3, batch=8, steps=6, dim=4)
  mask = np.arange(6)[None, :] < RNG.integers(1, 7, size=8)[:, None]
  sharding_check.assert_sharded_equals_single(
      lambda p, f, m: losses.cpc(p, f, temperature=0.5, mask=m), (preds, future, mask),
      [(P(None, 'data'), P('data'), P('data')), (P(), P('data'), P()),
       (P(None, 'data'), P(), P('data'))], argnums=(0, 1))


def _naive_dim(local, global_, estimator):
  """Deep InfoMax's estimators with loops over every (global, image, location) triple."""
  batch, positions, _ = local.shape
  score = lambda i, j, p: float(np.dot(global_[i], local[j, p]))
  softplus = lambda x: math.log1p(math.exp(-abs(x))) + max(x, 0.0)
  pos = [score(i, i, p) for i in range(batch) for p in range(positions)]
  neg = [score(i, j, p) for i in range(batch) for j in range(batch) if j != i
         for p in range(positions)]
  if estimator == 'jsd':
    return np.mean([softplus(s) for s in neg]) + np.mean([softplus(-s) for s in pos])
  if estimator == 'dv':
    return math.log(np.mean([math.exp(s) for s in neg])) - np.mean(pos)
  values = []
  for i in range(batch):
    negatives = [score(i, j, q) for j in range(batch) if j != i for q in range(positions)]
    for p in range(positions):
      logits = [score(i, i, p)] + negatives
      top = max(logits)
      values.append(top + math.log(sum(math.exp(v - top) for v in logits)) - logits[0])
  return np.mean(values)


@pytest.mark.parametrize('estimator', ['jsd', 'infonce', 'dv'])
def test_dim_estimators_match_loops(estimator):
  local = RNG.normal(size=(4, 3, 5)).astype(np.float32)
  global_ = RNG.normal(size=(4, 5)).astype(np.float32)
  np.testing.assert_allclose(losses.dim_local_global(local, global_, estimator=estimator),
                             _naive_dim(local, global_, estimator), rtol=1e-5)
  # The global objective is the same function at one location.
  np.testing.assert_allclose(
      losses.dim_local_global(local[:, :1], global_, estimator=estimator),
      _naive_dim(local[:, :1], global_, estimator), rtol=1e-5)
  check_grads(lambda l, g: losses.dim_local_global(l, g, estimator=estimator),
              (local[:3, :2, :3], global_[:3, :3]), order=1, modes=['rev'], atol=2e-2,
              rtol=2e-2)


def test_dim_estimators_reward_information():
  # Globals that pick out their own image's local features (and not the others') score
  # better under every estimator than globals that carry nothing about the image.
  local = np.tile(np.eye(4, dtype=np.float32)[:, None, :], (1, 3, 1))
  informative, blind = 5 * np.eye(4, dtype=np.float32), np.full((4, 4), 1.0, np.float32)
  for estimator in ('jsd', 'infonce', 'dv'):
    good = float(losses.dim_local_global(local, informative, estimator=estimator))
    bad = float(losses.dim_local_global(local, blind, estimator=estimator))
    assert good < bad, estimator
  # InfoNCE with equal scores: log(1 + (B - 1) P), the number of candidates.
  np.testing.assert_allclose(losses.dim_local_global(local, blind, estimator='infonce'),
                             math.log(1 + 3 * 3), rtol=1e-6)


@pytest.mark.parametrize('local_shape, global_shape, estimator, message', [
    ((4, 3, 5), (4, 6), 'jsd', 'same B and D'),
    ((4, 5), (4, 5), 'jsd', 'must be \\[B, P, D\\]'),
    ((1, 3, 5), (1, 5), 'jsd', 'a batch of 1 has none'),
    ((4, 3, 5), (4, 5), 'mine', "estimator='mine' is unknown"),
])
def test_dim_errors_name_the_problem(local_shape, global_shape, estimator, message):
  with pytest.raises(ValueError, match=message):
    losses.dim_local_global(np.zeros(local_shape, np.float32), np.zeros(global_shape, np.float32),
                            estimator=estimator)


@pytest.mark.parametrize('estimator', ['jsd', 'infonce', 'dv'])
def test_dim_eight_devices_equal_one(estimator):
  local = RNG.normal(size=(8, 8, 6)).astype(np.float32)
  global_ = RNG.normal(size=(8, 6)).astype(np.float32)
  sharding_check.assert_sharded_equals_single(
      lambda l, g: losses.dim_local_global(l, g, estimator=estimator), (local, global_),
      [(P('data'), P('data')), (P('data'), P()), (P(None, 'data'), P())])


def test_dim_score_clip_and_penalty_as_amdim():
  local = RNG.normal(scale=4.0, size=(4, 3, 5)).astype(np.float32)
  global_ = RNG.normal(scale=4.0, size=(4, 5)).astype(np.float32)
  scores = np.einsum('id,jpd->ijp', global_.astype(np.float64), local)
  clipped = 2.0 * np.tanh(scores / 2.0)
  # InfoNCE written out on the clipped scores, plus the penalty on the raw ones.
  positive = np.stack([clipped[i, i] for i in range(4)])  # [B, P]
  negatives = [np.concatenate([clipped[i, j] for j in range(4) if j != i]) for i in range(4)]
  want = np.mean([np.log(np.exp(positive[i, p]) + np.exp(negatives[i]).sum()) - positive[i, p]
                  for i in range(4) for p in range(3)])
  want += 0.1 * np.mean(scores**2)
  got = losses.dim_local_global(local, global_, estimator='infonce', score_clip=2.0,
                                score_penalty=0.1)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  with pytest.raises(ValueError, match='score_clip=0.0 must be > 0'):
    losses.dim_local_global(local, global_, estimator='jsd', score_clip=0.0)
