"""batch_info_nce (MoCo v3's and NNCLR's in-batch InfoNCE): naive loop, gradients, 8 devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jssl.losses import batch_info_nce


def naive(query, key, temperature):
  q = query / np.linalg.norm(query, axis=1, keepdims=True)
  k = key / np.linalg.norm(key, axis=1, keepdims=True)
  total = 0.0
  for i in range(len(q)):
    logits = [np.dot(q[i], k[j]) / temperature for j in range(len(k))]
    total += -(logits[i] - np.log(np.sum(np.exp(logits))))
  return total / len(q)


@pytest.mark.parametrize('n,d,temperature', [(5, 3, 0.2), (16, 8, 1.0)])
def test_matches_naive_loop(n, d, temperature):
  rng = np.random.default_rng(n)
  q, k = rng.normal(size=(2, n, d))
  got = batch_info_nce(jnp.asarray(q, jnp.float32), jnp.asarray(k, jnp.float32),
                       temperature=temperature)
  np.testing.assert_allclose(got, naive(q, k, temperature), rtol=1e-5, atol=1e-6)


def test_gradient_matches_finite_differences():
  rng = np.random.default_rng(1)
  q, k = rng.normal(size=(2, 4, 3))
  grad_q, grad_k = jax.grad(lambda a, b: batch_info_nce(a, b, temperature=0.5), argnums=(0, 1))(
      jnp.asarray(q, jnp.float32), jnp.asarray(k, jnp.float32))
  eps = 1e-5
  for x, grad, which in ((q, grad_q, 0), (k, grad_k, 1)):
    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
      plus, minus = x.copy(), x.copy()
      plus[idx] += eps
      minus[idx] -= eps
      args_plus = (plus, k) if which == 0 else (q, plus)
      args_minus = (minus, k) if which == 0 else (q, minus)
      numeric[idx] = (naive(*args_plus, 0.5) - naive(*args_minus, 0.5)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-4)


def test_sharded_over_8_devices_equals_single_device():
  rng = np.random.default_rng(2)
  q = jnp.asarray(rng.normal(size=(32, 8)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(32, 8)), jnp.float32)
  fn = jax.jit(jax.value_and_grad(lambda a, b: batch_info_nce(a, b, temperature=0.2),
                                  argnums=(0, 1)))
  want_loss, want_grads = fn(q, k)
  sharding = NamedSharding(Mesh(np.asarray(jax.devices()), ('data',)), P('data'))
  loss, grads = fn(jax.device_put(q, sharding), jax.device_put(k, sharding))
  np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
  for got, want in zip(grads, want_grads):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_rejects_mismatched_shapes():
  with pytest.raises(ValueError, match='equal shape'):
    batch_info_nce(jnp.zeros((4, 3)), jnp.zeros((5, 3)), temperature=0.1)
