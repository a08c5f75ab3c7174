"""BYOL, SimSiam's negative cosine, Barlow Twins and VICReg losses.

Each is checked against a naive float64 loop (explicit loops over the entries of the
cross-correlation and covariance matrices), its gradients against float64 central differences
of that loop, its loss and gradients on 8 simulated devices against one device (a per-device
batch statistic fails there), and a few cases whose value is known by hand.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jssl.losses import (
    barlow_twins,
    barlow_twins_terms,
    byol,
    negative_cosine,
    vicreg,
    vicreg_terms,
)
from sharding_check import assert_sharded_equals_single

# ----------------------------------------------------------------------------- naive references


def _rows(x):
  return [np.asarray(r, np.float64) for r in np.asarray(x, np.float64)]


def _cos(a, b):
  return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def naive_byol(p, z):
  return float(np.mean([2.0 - 2.0 * _cos(a, b) for a, b in zip(_rows(p), _rows(z))]))


def naive_negative_cosine(p, z):
  return float(np.mean([-_cos(a, b) for a, b in zip(_rows(p), _rows(z))]))


def _column_stats(z, ddof):
  z = np.asarray(z, np.float64)
  n, d = z.shape
  means = [sum(z[b, j] for b in range(n)) / n for j in range(d)]
  variances = [sum((z[b, j] - means[j]) ** 2 for b in range(n)) / (n - ddof) for j in range(d)]
  return means, variances


def naive_cross_correlation(z1, z2, eps):
  """c_ij = (1/N) Σ_b z1n[b, i] z2n[b, j], each column normalised with its biased std."""
  n, d = np.shape(z1)
  (m1, v1), (m2, v2) = _column_stats(z1, 0), _column_stats(z2, 0)
  c = np.zeros((d, d))
  for i in range(d):
    for j in range(d):
      c[i, j] = sum((z1[b][i] - m1[i]) / np.sqrt(v1[i] + eps)
                    * (z2[b][j] - m2[j]) / np.sqrt(v2[j] + eps) for b in range(n)) / n
  return c


def naive_barlow_twins(z1, z2, lambd, eps=1e-5):
  z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
  c = naive_cross_correlation(z1, z2, eps)
  d = c.shape[0]
  on = sum((1.0 - c[i, i]) ** 2 for i in range(d))
  off = sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j)
  return on + lambd * off


def naive_vicreg_terms(z1, z2, eps=1e-4):
  z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
  n, d = z1.shape
  invariance = sum((z1[b, j] - z2[b, j]) ** 2 for b in range(n) for j in range(d)) / (n * d)
  variance, covariance = 0.0, 0.0
  for z in (z1, z2):
    means, variances = _column_stats(z, 1)
    variance += sum(max(0.0, 1.0 - np.sqrt(v + eps)) for v in variances) / d
    for i in range(d):
      for j in range(d):
        if i != j:
          cov = sum((z[b, i] - means[i]) * (z[b, j] - means[j]) for b in range(n)) / (n - 1)
          covariance += cov**2 / d
  return {'invariance': invariance, 'variance': variance, 'covariance': covariance}


def naive_vicreg(z1, z2, sim_weight, var_weight, cov_weight):
  t = naive_vicreg_terms(z1, z2)
  return sim_weight * t['invariance'] + var_weight * t['variance'] + cov_weight * t['covariance']


# ----------------------------------------------------------------------------- helpers


def _normal(rng, *shape, scale=1.0):
  return (scale * rng.normal(size=shape)).astype(np.float32)


def _assert_matches_naive_with_gradients(loss_fn, naive_fn, args, argnums, eps=1e-5):
  """float32 `loss_fn` equals float64 `naive_fn`; its gradients w.r.t. `argnums` equal float64
  central differences of `naive_fn`. Returns the gradients."""
  loss, grads = jax.jit(jax.value_and_grad(loss_fn, argnums=argnums))(*args)
  np.testing.assert_allclose(loss, naive_fn(*args), rtol=1e-5, atol=1e-5)
  for argnum, grad in zip(argnums, grads):
    numeric = np.zeros(np.shape(args[argnum]), np.float64)
    for idx in np.ndindex(numeric.shape):
      plus = [np.array(a, np.float64) for a in args]
      minus = [np.array(a, np.float64) for a in args]
      plus[argnum][idx] += eps
      minus[argnum][idx] -= eps
      numeric[idx] = (naive_fn(*plus) - naive_fn(*minus)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=2e-3, atol=2e-4, err_msg=f'argument {argnum}')
  return grads


BATCH_SHARDED = [(P('data'), P('data')), (P('data'), P(None, 'data'))]


def _hadamard_columns(n, d):
  """[n, d] with ±1 entries, every column mean 0, biased variance 1, columns orthogonal."""
  h = np.array([[1.0]])
  while h.shape[0] < n:
    h = np.block([[h, h], [h, -h]])
  return h[:n, 1:d + 1].astype(np.float32)  # column 0 is all ones


# ----------------------------------------------------------------------------- BYOL / SimSiam


def test_byol_matches_naive_and_has_no_gradient_to_the_target():
  rng = np.random.default_rng(0)
  p, z = _normal(rng, 6, 5), _normal(rng, 6, 5)
  (grad_p,) = _assert_matches_naive_with_gradients(byol, naive_byol, (p, z), argnums=(0,))
  assert np.abs(grad_p).max() > 1e-3
  grad_z = jax.jit(jax.grad(byol, argnums=1))(p, z)
  np.testing.assert_array_equal(grad_z, 0.0)


def test_byol_hand_built():
  p = jnp.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
  z = jnp.array([[5.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])  # cosines 1, 0, -1
  np.testing.assert_allclose(byol(p, z), (0.0 + 2.0 + 4.0) / 3, rtol=1e-6)
  np.testing.assert_allclose(negative_cosine(p, z), -(1.0 + 0.0 - 1.0) / 3, atol=1e-7)


def test_negative_cosine_matches_naive_with_gradients_to_both():
  rng = np.random.default_rng(1)
  p, z = _normal(rng, 6, 5), _normal(rng, 6, 5)
  grads = _assert_matches_naive_with_gradients(negative_cosine, naive_negative_cosine, (p, z),
                                               argnums=(0, 1))
  assert all(np.abs(g).max() > 1e-3 for g in grads)


@pytest.mark.parametrize('loss', [byol, negative_cosine])
def test_cosine_losses_sharded_equal_single_device(loss):
  rng = np.random.default_rng(2)
  assert_sharded_equals_single(loss, (_normal(rng, 16, 8), _normal(rng, 16, 8)),
                               BATCH_SHARDED[:1])


# ----------------------------------------------------------------------------- Barlow Twins


def test_barlow_twins_matches_naive_loop_with_gradients():
  rng = np.random.default_rng(3)
  z1 = _normal(rng, 8, 4)
  z2 = z1 + _normal(rng, 8, 4, scale=0.7)  # correlated views, as after training
  fn = functools.partial(barlow_twins, lambd=0.3)
  naive = functools.partial(naive_barlow_twins, lambd=0.3)
  _assert_matches_naive_with_gradients(fn, naive, (z1, z2), argnums=(0, 1))


def test_barlow_twins_terms_and_cross_correlation_match_naive():
  rng = np.random.default_rng(4)
  z1, z2 = _normal(rng, 12, 6, scale=3.0) + 1.0, _normal(rng, 12, 6)
  terms = jax.jit(barlow_twins_terms)(z1, z2)
  c = naive_cross_correlation(_rows(z1), _rows(z2), 1e-5)
  np.testing.assert_allclose(terms['cross_correlation'], c, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(terms['invariance'], naive_barlow_twins(z1, z2, 0.0), rtol=1e-5)
  np.testing.assert_allclose(terms['redundancy'],
                             naive_barlow_twins(z1, z2, 1.0) - naive_barlow_twins(z1, z2, 0.0),
                             rtol=1e-5)


def test_barlow_twins_identical_decorrelated_views_give_zero():
  z = _hadamard_columns(16, 8)
  # Scale and shift do not matter: the loss normalises each dimension over the batch.
  z = z * np.arange(1, 9, dtype=np.float32) + 5.0
  terms = jax.jit(barlow_twins_terms)(z, z)
  np.testing.assert_allclose(terms['cross_correlation'], np.eye(8), atol=1e-5)
  assert float(barlow_twins(z, z, lambd=5e-3)) < 1e-8
  # A correlated pair of dimensions is penalised only through λ.
  z_redundant = z.copy()
  z_redundant[:, 1] = z_redundant[:, 0]
  terms = barlow_twins_terms(z_redundant, z_redundant)
  assert float(terms['invariance']) < 1e-8
  np.testing.assert_allclose(terms['redundancy'], 2.0, rtol=1e-4)  # c_01 = c_10 = 1


def test_barlow_twins_sharded_equal_single_device():
  rng = np.random.default_rng(5)
  z1 = _normal(rng, 16, 8)
  z2 = z1 + _normal(rng, 16, 8, scale=0.5)
  assert_sharded_equals_single(functools.partial(barlow_twins, lambd=5e-3), (z1, z2),
                               BATCH_SHARDED)


# ----------------------------------------------------------------------------- VICReg

WEIGHTS = {'sim_weight': 25.0, 'var_weight': 25.0, 'cov_weight': 1.0}


def _vicreg_inputs(rng, n, d):
  # Some dimensions with std well below 1 and some well above, so that finite differences
  # never straddle the hinge of relu(1 - std).
  scales = np.linspace(0.3, 2.5, d).astype(np.float32)
  z1 = _normal(rng, n, d) * scales
  return z1, z1 + _normal(rng, n, d, scale=0.3) * scales


def test_vicreg_matches_naive_loop_with_gradients():
  z1, z2 = _vicreg_inputs(np.random.default_rng(6), 8, 4)
  fn = functools.partial(vicreg, **WEIGHTS)
  naive = functools.partial(naive_vicreg, **WEIGHTS)
  _assert_matches_naive_with_gradients(fn, naive, (z1, z2), argnums=(0, 1))


def test_vicreg_terms_match_naive_and_weights_combine_them():
  z1, z2 = _vicreg_inputs(np.random.default_rng(7), 12, 6)
  terms = jax.jit(vicreg_terms)(z1, z2)
  want = naive_vicreg_terms(z1, z2)
  assert set(terms) == set(want)
  for name in want:
    np.testing.assert_allclose(terms[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)
  assert all(float(terms[name]) > 1e-3 for name in want)
  value = vicreg(z1, z2, sim_weight=2.0, var_weight=3.0, cov_weight=5.0)
  np.testing.assert_allclose(
      value, 2 * want['invariance'] + 3 * want['variance'] + 5 * want['covariance'], rtol=1e-5)


def test_vicreg_variance_term_zero_above_unit_std_positive_when_collapsed():
  spread = 2.0 * _hadamard_columns(16, 8)  # std 2 in every dimension, uncorrelated
  terms = vicreg_terms(spread, spread)
  np.testing.assert_allclose(terms['variance'], 0.0, atol=0.0)
  np.testing.assert_allclose(terms['covariance'], 0.0, atol=1e-6)
  np.testing.assert_allclose(terms['invariance'], 0.0, atol=0.0)
  collapsed = np.full((16, 8), 0.7, np.float32)  # every example the same embedding
  terms = vicreg_terms(collapsed, collapsed)
  # Each branch: mean over dims of relu(1 - sqrt(0 + 1e-4)) = 0.99; the branches are summed.
  np.testing.assert_allclose(terms['variance'], 2 * 0.99, rtol=1e-6)
  grad = jax.grad(lambda z: vicreg_terms(z, collapsed)['variance'])(
      collapsed + _normal(np.random.default_rng(8), 16, 8, scale=1e-2))
  assert np.abs(grad).max() > 0.0  # a collapsed branch is pushed apart


def test_vicreg_sharded_equal_single_device():
  z1, z2 = _vicreg_inputs(np.random.default_rng(9), 16, 8)
  assert_sharded_equals_single(functools.partial(vicreg, **WEIGHTS), (z1, z2), BATCH_SHARDED)


@pytest.mark.parametrize('loss', [
    functools.partial(barlow_twins, lambd=5e-3),
    functools.partial(vicreg, **WEIGHTS),
    byol,
])
def test_shape_errors(loss):
  with pytest.raises(ValueError, match=r'equal shape \[N, D\]'):
    loss(jnp.zeros((4, 3)), jnp.zeros((4, 2)))
  if loss is not byol:
    with pytest.raises(ValueError, match='at least 2 rows'):
      loss(jnp.zeros((1, 3)), jnp.zeros((1, 3)))
