"""`jssl.losses.dgi` and `jssl.losses.link_reconstruction` against naive references, their
gradients, and 8 simulated devices against one."""

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


def _naive_link_reconstruction(pos, neg):
  """Loops: -log sigmoid(s) averaged over the edges plus -log(1 - sigmoid(s)) over the
  non-edges."""
  sigmoid = lambda x: 1 / (1 + math.exp(-x))
  edges = sum(-math.log(sigmoid(float(s))) for s in pos) / len(pos)
  non_edges = sum(-math.log(1 - sigmoid(float(s))) for s in neg) / len(neg)
  return edges + non_edges


def test_link_reconstruction_matches_its_reference_and_weighs_the_two_sets_equally():
  pos = RNG.normal(size=(7,)).astype(np.float64)
  neg = RNG.normal(size=(13,)).astype(np.float64)
  np.testing.assert_allclose(losses.link_reconstruction(pos, neg),
                             _naive_link_reconstruction(pos, neg), rtol=1e-6)
  # Repeating the non-edges changes nothing: each set is averaged on its own.
  np.testing.assert_allclose(losses.link_reconstruction(pos, np.tile(neg, 3)),
                             losses.link_reconstruction(pos, neg), rtol=1e-6)
  np.testing.assert_allclose(losses.link_reconstruction(np.zeros(3), np.zeros(9)),
                             2 * math.log(2.0), rtol=1e-6)
  assert float(losses.link_reconstruction(np.full(3, 40.0), np.full(3, -40.0))) < 1e-12
  big = losses.link_reconstruction(jnp.asarray([-1e4]), jnp.asarray([1e4]))
  np.testing.assert_allclose(big, 2e4, rtol=1e-6)  # stable: no overflow to inf
  check_grads(losses.link_reconstruction, (pos, neg), order=1, modes=['rev'], atol=1e-2,
              rtol=1e-2)


def test_link_reconstruction_eight_devices_equal_one():
  pos = RNG.normal(size=(32,)).astype(np.float32)
  neg = RNG.normal(size=(64,)).astype(np.float32)
  sharding_check.assert_sharded_equals_single(
      losses.link_reconstruction, (pos, neg), [(P('data'), P('data')), (P(), P('data'))])
