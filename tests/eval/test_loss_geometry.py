"""Similarity gradients: jax.grad through `similarity_gradients` vs loops and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.eval import loss_geometry
from jssl.losses import nt_xent


def naive_anchor_gradients(s, positives, temperature):
  """dl_i/ds_ij of l_i = -log(exp(s_ip / t) / sum_{k != i} exp(s_ik / t)), one entry at a time."""
  m = s.shape[0]
  out = np.zeros((m, m))
  for i in range(m):
    denominator = sum(np.exp(s[i, k] / temperature) for k in range(m) if k != i)
    for j in range(m):
      if j != i:
        p = np.exp(s[i, j] / temperature) / denominator
        out[i, j] = (p - (j == positives[i])) / temperature
  return out


def naive_nt_xent_of_similarities(s, temperature):
  """NT-Xent as a function of a [2N, 2N] similarity matrix, in float64."""
  m = s.shape[0]
  total = 0.0
  for i in range(m):
    logits = np.array([s[i, k] / temperature for k in range(m) if k != i])
    positive = s[i, (i + m // 2) % m] / temperature
    total += np.log(np.sum(np.exp(logits))) - positive
  return total / m


def _similarity_gradients(loss, z):
  # One XLA compile instead of one per eager op: several times faster on CPU.
  return jax.jit(loss_geometry.similarity_gradients, static_argnums=0)(loss, z)


def _unit_rows(rng, m, d):
  z = rng.normal(size=(m, d))
  return z / np.linalg.norm(z, axis=1, keepdims=True)


def test_vectors_have_the_requested_similarities_to_the_anchor():
  similarities = np.array([0.9, 0.3, -0.2, -0.7])
  v = np.asarray(loss_geometry.vectors_at_similarities(similarities, dim=7), np.float64)
  assert v.shape == (5, 7)
  np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
  np.testing.assert_allclose(v[1:] @ v[0], similarities, atol=1e-6)
  np.testing.assert_allclose(v[1] @ v[2], 0.9 * 0.3, atol=1e-6)
  assert np.linalg.matrix_rank(v) == 5


@pytest.mark.parametrize('similarities,dim', [([0.5, 1.0], None), ([[0.5]], None), ([0.1, 0.2], 2)])
def test_vectors_reject_impossible_requests(similarities, dim):
  with pytest.raises(ValueError, match='vectors_at_similarities'):
    loss_geometry.vectors_at_similarities(similarities, dim=dim)


def test_similarity_gradients_of_a_linear_loss_are_its_symmetrised_weights():
  rng = np.random.default_rng(0)
  m, d = 6, 9
  weights = rng.normal(size=(m, m))
  z = _unit_rows(rng, m, d) * rng.uniform(0.5, 2.0, size=(m, 1))  # norms must not matter

  def loss(x):
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    return jnp.sum(jnp.asarray(weights, jnp.float32) * (x @ x.T))

  got = _similarity_gradients(loss, jnp.asarray(z, jnp.float32))
  expected = (weights + weights.T) * (1 - np.eye(m))
  np.testing.assert_allclose(got, expected, atol=1e-4)


def test_nt_xent_similarity_gradients_match_closed_form_and_finite_differences():
  n = 4
  rng = np.random.default_rng(0)
  z = _unit_rows(rng, 2 * n, 2 * n + 3)
  s = z @ z.T
  positives = (np.arange(2 * n) + n) % (2 * n)
  measure = jax.jit(lambda x, t: loss_geometry.similarity_gradients(
      lambda y: nt_xent(y[:n], y[n:], temperature=t), x))  # one compile for every temperature

  for temperature in (0.1, 0.5):
    closed = loss_geometry.anchor_similarity_gradients(
        jnp.asarray(s), jnp.asarray(positives), temperature=temperature)
    naive = naive_anchor_gradients(s, positives, temperature)
    np.testing.assert_allclose(closed, naive, rtol=1e-4, atol=1e-5)

    got = np.asarray(measure(jnp.asarray(z, jnp.float32), temperature))
    np.testing.assert_allclose(got, (naive + naive.T) / (2 * n), rtol=1e-3, atol=1e-4)

    # Finite differences of the loss in each pair's similarity (entered at (i, j) and (j, i)).
    eps = 1e-5
    for i, j in ((0, 2), (1, 1 + n), (3, 6)):  # negatives, and a positive pair
      bumped, lowered = s.copy(), s.copy()
      bumped[i, j] = bumped[j, i] = s[i, j] + eps
      lowered[i, j] = lowered[j, i] = s[i, j] - eps
      numeric = (naive_nt_xent_of_similarities(bumped, temperature)
                 - naive_nt_xent_of_similarities(lowered, temperature)) / (2 * eps)
      np.testing.assert_allclose(got[i, j], numeric, rtol=1e-3, atol=1e-5)


def test_similarity_gradients_need_independent_rows():
  with pytest.raises(ValueError, match='D >= M'):
    loss_geometry.similarity_gradients(jnp.sum, jnp.ones((4, 3)))


def test_anchor_similarity_gradients_reject_mismatched_shapes():
  with pytest.raises(ValueError, match=r'\[M, M\]'):
    loss_geometry.anchor_similarity_gradients(jnp.eye(4), jnp.arange(3), temperature=0.1)
