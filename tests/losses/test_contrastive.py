"""NT-Xent against a per-anchor loop, finite differences, and 8-device sharding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jax.test_util import check_grads

from jssl.losses import nt_xent


def naive_nt_xent(z1, z2, temperature):
  """Loop over the 2N anchors exactly as the SimCLR paper writes l(i, j)."""
  z = np.concatenate([z1, z2]).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  n2 = z.shape[0]
  n = n2 // 2
  total = 0.0
  for i in range(n2):
    j = (i + n) % n2
    sims = [np.dot(z[i], z[k]) / temperature for k in range(n2) if k != i]
    denominator = np.sum(np.exp(sims))
    total += -np.log(np.exp(np.dot(z[i], z[j]) / temperature) / denominator)
  return total / n2


@pytest.mark.parametrize('n,d,temperature', [(4, 3, 0.5), (16, 8, 0.1), (7, 32, 1.0)])
def test_matches_naive_loop(n, d, temperature):
  rng = np.random.default_rng(n * d)
  z1 = rng.normal(size=(n, d)).astype(np.float32)
  z2 = rng.normal(size=(n, d)).astype(np.float32)
  got = nt_xent(jnp.asarray(z1), jnp.asarray(z2), temperature=temperature)
  np.testing.assert_allclose(got, naive_nt_xent(z1, z2, temperature), rtol=1e-5, atol=1e-5)


def test_identical_views_beat_random_views():
  rng = np.random.default_rng(0)
  z = jnp.asarray(rng.normal(size=(32, 16)), jnp.float32)
  other = jnp.asarray(rng.normal(size=(32, 16)), jnp.float32)
  assert nt_xent(z, z, temperature=0.1) < nt_xent(z, other, temperature=0.1)


def test_stable_at_tiny_temperature_and_scale_invariant():
  rng = np.random.default_rng(1)
  z1 = jnp.asarray(rng.normal(size=(8, 4)), jnp.float32)
  z2 = jnp.asarray(rng.normal(size=(8, 4)), jnp.float32)
  loss = nt_xent(z1, z2, temperature=1e-3)
  grads = jax.grad(lambda a: nt_xent(a, z2, temperature=1e-3))(z1)
  assert np.isfinite(loss) and np.all(np.isfinite(grads))
  np.testing.assert_allclose(nt_xent(1e3 * z1, z2, temperature=0.2),
                             nt_xent(z1, z2, temperature=0.2), rtol=1e-5)


def test_finite_difference_gradients():
  rng = np.random.default_rng(2)
  z1 = jnp.asarray(rng.normal(size=(6, 5)), jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
  z2 = jnp.asarray(rng.normal(size=(6, 5)), z1.dtype)
  check_grads(lambda a, b: nt_xent(a, b, temperature=0.5), (z1, z2), order=1, modes=('rev',),
              eps=1e-2, atol=2e-2, rtol=2e-2)


def test_gradient_matches_float64_numpy_finite_differences():
  rng = np.random.default_rng(3)
  z1 = rng.normal(size=(5, 4)).astype(np.float32)
  z2 = rng.normal(size=(5, 4)).astype(np.float32)
  grad = np.asarray(jax.grad(lambda a: nt_xent(a, jnp.asarray(z2), temperature=0.3))(jnp.asarray(z1)))
  eps = 1e-4
  numeric = np.zeros_like(z1, dtype=np.float64)
  for idx in np.ndindex(z1.shape):
    plus, minus = z1.astype(np.float64), z1.astype(np.float64)
    plus[idx] += eps
    minus[idx] -= eps
    numeric[idx] = (naive_nt_xent(plus, z2, 0.3) - naive_nt_xent(minus, z2, 0.3)) / (2 * eps)
  np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-4)


def test_sharded_over_8_devices_equals_single_device():
  assert jax.device_count() == 8, 'tests/conftest.py sets 8 simulated CPU devices'
  rng = np.random.default_rng(4)
  z1 = jnp.asarray(rng.normal(size=(64, 32)), jnp.float32)
  z2 = jnp.asarray(rng.normal(size=(64, 32)), jnp.float32)
  loss_and_grad = jax.value_and_grad(lambda a, b: nt_xent(a, b, temperature=0.2), argnums=(0, 1))
  single_loss, single_grads = jax.jit(loss_and_grad)(z1, z2)
  mesh = Mesh(np.asarray(jax.devices()), ('data',))
  sharding = NamedSharding(mesh, P('data'))
  s1, s2 = jax.device_put(z1, sharding), jax.device_put(z2, sharding)
  assert len(s1.sharding.device_set) == 8
  loss, grads = jax.jit(loss_and_grad)(s1, s2)
  np.testing.assert_allclose(loss, single_loss, rtol=1e-6, atol=1e-6)
  for got, want in zip(grads, single_grads):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_rejects_mismatched_shapes():
  with pytest.raises(ValueError, match='equal shape'):
    nt_xent(jnp.zeros((4, 3)), jnp.zeros((5, 3)), temperature=0.1)
