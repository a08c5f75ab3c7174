"""Collapse diagnostics vs NumPy references, on collapsed and spread batches, and sharded."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jssl.eval import diagnostics


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def naive_rankme(x, eps=1e-7):
  sigma = np.linalg.svd(np.asarray(x, np.float64), compute_uv=False)
  p = sigma / sigma.sum() + eps
  return np.exp(-np.sum(p * np.log(p)))


def naive_uniformity(x, t=2.0):
  u = _unit(x)
  values = [np.exp(-t * np.sum((u[i] - u[j]) ** 2))
            for i in range(len(u)) for j in range(len(u)) if i != j]
  return np.log(np.mean(values))


def naive_alignment(x1, x2):
  u1, u2 = _unit(x1), _unit(x2)
  return np.mean([np.sum((a - b) ** 2) for a, b in zip(u1, u2)])


def naive_output_std(x):
  u = _unit(x)
  return np.mean([np.std(u[:, d]) for d in range(u.shape[1])])


def _batch(seed, n, d):
  return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_each_diagnostic_matches_numpy_for_tall_and_wide_batches():
  for n, d in ((48, 12), (10, 24)):  # N >= D uses xᵀx, N < D uses x xᵀ
    x, y = _batch(0, n, d), _batch(1, n, d)
    np.testing.assert_allclose(diagnostics.rankme(x), naive_rankme(x), rtol=1e-4)
    np.testing.assert_allclose(diagnostics.output_std(x), naive_output_std(x), rtol=1e-5)
    np.testing.assert_allclose(diagnostics.alignment(x, y), naive_alignment(x, y), rtol=1e-5)
    np.testing.assert_allclose(diagnostics.uniformity(x), naive_uniformity(x), rtol=1e-4)


def test_collapsed_batch_reads_as_collapsed_and_spread_batch_does_not():
  row = _batch(2, 1, 16)
  collapsed = np.repeat(row, 64, axis=0) + 1e-6 * _batch(3, 64, 16)
  spread = _batch(4, 64, 16)
  assert float(diagnostics.rankme(collapsed)) < 1.01
  assert float(diagnostics.rankme(spread)) > 12.0  # near D = 16 for isotropic noise
  assert float(diagnostics.output_std(collapsed)) < 1e-4
  np.testing.assert_allclose(diagnostics.output_std(spread), 1 / np.sqrt(16), rtol=0.15)
  assert abs(float(diagnostics.uniformity(collapsed))) < 1e-4
  assert float(diagnostics.uniformity(spread)) < -2.0
  assert float(diagnostics.alignment(spread, spread)) < 1e-6
  # A rank-3 batch has effective rank at most 3.
  low_rank = _batch(5, 64, 3) @ _batch(6, 3, 16)
  assert 1.5 < float(diagnostics.rankme(low_rank)) <= 3.0 + 1e-3


def test_sharded_over_eight_devices_equals_one_device():
  e1, e2, features = _batch(7, 64, 16), _batch(8, 64, 16), _batch(9, 64, 32)
  single = jax.jit(diagnostics.collapse_metrics)(e1, e2, features)
  mesh = Mesh(np.asarray(jax.devices()), ('data',))
  sharded_inputs = [jax.device_put(a, NamedSharding(mesh, P('data'))) for a in (e1, e2, features)]
  sharded = jax.jit(diagnostics.collapse_metrics)(*sharded_inputs)
  assert len(jax.devices()) == 8
  assert set(single) == {'rankme', 'rankme_features', 'output_std', 'alignment', 'uniformity'}
  for key in single:
    np.testing.assert_allclose(sharded[key], single[key], rtol=1e-5, err_msg=key)


def test_diagnostics_carry_no_gradient():
  e1 = jnp.asarray(_batch(10, 16, 8))
  grad = jax.grad(lambda x: sum(diagnostics.collapse_metrics(x, x + 1.0, x).values()))(e1)
  assert np.all(np.asarray(grad) == 0.0)
