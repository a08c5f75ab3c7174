"""Collapse diagnostics of a batch of embeddings, logged by the train loop every step.

Every statistic is over the whole (global) batch: under `jax.jit` with the batch axis sharded,
the reductions below are global, so 8 devices report what 1 device reports.

* `rankme` — effective rank of the embeddings (Garrido et al. 2023): exp of the entropy of the
  normalised singular values. 1 for a fully collapsed (rank-1) batch; up to min(N, D).
* `output_std` — mean over dimensions of the batch std of the L2-normalised embeddings (Chen &
  He 2021, SimSiam's collapse measure): 0 when every embedding is the same; about 1/sqrt(D)
  when they are spread isotropically over the sphere.
* `alignment` — mean squared distance between the normalised embeddings of two views of the
  same example (Wang & Isola 2020, alpha = 2): 0 is perfectly aligned.
* `uniformity` — log of the mean Gaussian potential exp(-t·||u - v||²) over pairs of distinct
  normalised embeddings (Wang & Isola 2020, t = 2): 0 for a collapsed batch, down to about
  -4 for embeddings spread uniformly over a high-dimensional sphere.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _normalise(x: jax.Array) -> jax.Array:
  x = x.astype(jnp.float32)
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-24))


def singular_values(x: jax.Array) -> jax.Array:
  """Singular values of x [N, D], from the eigenvalues of the smaller Gram matrix.

  The Gram matrix xᵀx [D, D] is a sum over the batch (so it shards over N without gathering
  the batch); for N < D, x xᵀ [N, N] is used instead. Either way the non-zero eigenvalues are
  the squared singular values. float32: singular values below ~1e-3 of the largest are noise,
  which changes RankMe's entropy negligibly.

  Args:
    x: [N, D].

  Returns:
    [min(N, D)] non-negative, in ascending order.
  """
  x = x.astype(jnp.float32)
  gram = x.T @ x if x.shape[0] >= x.shape[1] else x @ x.T
  gram = (gram + gram.T) / 2
  return jnp.sqrt(jnp.maximum(jnp.linalg.eigvalsh(gram), 0.0))


def rankme(x: jax.Array, *, eps: float = 1e-7) -> jax.Array:
  """Effective rank exp(-Σ p_k log p_k), p_k = σ_k / Σ σ + eps, of x [N, D] (scalar)."""
  sigma = singular_values(x)
  p = sigma / jnp.maximum(jnp.sum(sigma), 1e-12) + eps
  return jnp.exp(-jnp.sum(p * jnp.log(p)))


def output_std(x: jax.Array) -> jax.Array:
  """Mean over D of the batch std of the L2-normalised rows of x [N, D] (scalar)."""
  return jnp.mean(jnp.std(_normalise(x), axis=0))


def alignment(x1: jax.Array, x2: jax.Array) -> jax.Array:
  """Mean squared distance between normalised x1 [N, D] and x2 [N, D], row by row (scalar)."""
  return jnp.mean(jnp.sum((_normalise(x1) - _normalise(x2)) ** 2, axis=-1))


def uniformity(x: jax.Array, *, t: float = 2.0) -> jax.Array:
  """log mean over pairs i != j of exp(-t ||u_i - u_j||²), u = normalised x [N, D] (scalar)."""
  u = _normalise(x)
  n = u.shape[0]
  sq_dist = jnp.maximum(2.0 - 2.0 * (u @ u.T), 0.0)
  off_diagonal = ~jnp.eye(n, dtype=bool)
  # log-sum-exp over the n(n-1) off-diagonal pairs, minus log of their count.
  logits = jnp.where(off_diagonal, -t * sq_dist, -jnp.inf)
  return jax.nn.logsumexp(logits) - jnp.log(float(n * (n - 1)))


def collapse_metrics(e1: jax.Array, e2: jax.Array, features: jax.Array) -> dict[str, jax.Array]:
  """The loop's per-step diagnostics.

  Args:
    e1, e2: [N, D] a method's outputs for two views of the same N examples.
    features: [N, F] encoder representations (of the first view).

  Returns:
    'rankme' (of e1), 'rankme_features', 'output_std' (of e1), 'alignment' (e1 vs e2) and
    'uniformity' (of e1), all float32 scalars, computed without gradient.
  """
  e1, e2, features = jax.lax.stop_gradient((e1, e2, features))
  return {
      'rankme': rankme(e1),
      'rankme_features': rankme(features),
      'output_std': output_std(e1),
      'alignment': alignment(e1, e2),
      'uniformity': uniformity(e1),
  }
