"""`jssl.losses.dgi` against a naive reference, its gradients, and 8 simulated devices against
one."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

from jssl import losses
import sharding_check

RNG = np.random.default_rng(0)


def _naive_dgi(pos, neg):
  """Binary cross-entropy with a loop: label 1 for real pairs, 0 for corrupted ones."""
  total = 0.0
  for score in pos:
    total -= math.log(1.0 / (1.0 + math.exp(-float(score))))
  for score in neg:
    total -= math.log(1.0 - 1.0 / (1.0 + math.exp(-float(score))))
  return total / (len(pos) + len(neg))


def test_dgi_matches_binary_cross_entropy():
  pos = RNG.normal(scale=3.0, size=(24,)).astype(np.float32)
  neg = RNG.normal(scale=3.0, size=(16,)).astype(np.float32)  # M != N is allowed
  np.testing.assert_allclose(losses.dgi(pos, neg), _naive_dgi(pos, neg), rtol=1e-6)
  # Chance: every score 0 gives log 2; a perfect discriminator approaches 0.
  np.testing.assert_allclose(losses.dgi(np.zeros(5), np.zeros(5)), math.log(2.0), rtol=1e-6)
  assert float(losses.dgi(np.full(5, 30.0), np.full(5, -30.0))) < 1e-12
  # Swapping the roles is wrong in the loss's eyes: real scored low costs ~|score|.
  np.testing.assert_allclose(losses.dgi(np.full(4, -50.0), np.full(4, 50.0)), 50.0, rtol=1e-6)
  # Large scores stay finite (softplus, not log of a sigmoid).
  big = losses.dgi(jnp.asarray([-1e4, 1e4]), jnp.asarray([1e4, -1e4]))
  assert np.isfinite(float(big)) and abs(float(big) - 5e3) < 1.0
  assert losses.dgi(pos, neg).dtype == jnp.float32
  bf16 = losses.dgi(jnp.asarray(pos, jnp.bfloat16), jnp.asarray(neg, jnp.bfloat16))
  assert bf16.dtype == jnp.float32


def test_dgi_gradients():
  pos = RNG.normal(size=(6,)).astype(np.float64)
  neg = RNG.normal(size=(5,)).astype(np.float64)
  check_grads(losses.dgi, (pos, neg), order=1, modes=['rev'], atol=1e-2, rtol=1e-2)
  # The closed form: d/dpos = -sigmoid(-pos) / (N + M), d/dneg = sigmoid(neg) / (N + M).
  grad_pos, grad_neg = jax.grad(losses.dgi, argnums=(0, 1))(jnp.asarray(pos, jnp.float32),
                                                            jnp.asarray(neg, jnp.float32))
  sigmoid = lambda x: 1 / (1 + np.exp(-x))
  np.testing.assert_allclose(grad_pos, -sigmoid(-pos) / 11, rtol=1e-5)
  np.testing.assert_allclose(grad_neg, sigmoid(neg) / 11, rtol=1e-5)


def test_eight_devices_equal_one():
  pos = RNG.normal(size=(32,)).astype(np.float32)
  neg = RNG.normal(size=(32,)).astype(np.float32)
  sharding_check.assert_sharded_equals_single(
      losses.dgi, (pos, neg), [(P('data'), P('data')), (P('data'), P()), (P(), P('data'))])
