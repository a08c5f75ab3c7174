"""Non-contrastive losses: BYOL / SimSiam cosine regression, Barlow Twins, VICReg.

None of these compares an example with the other examples of the batch through a softmax;
collapse is avoided by an asymmetric architecture and a stop-gradient (BYOL, SimSiam) or by
statistics of the batch (Barlow Twins' cross-correlation, VICReg's variance and covariance).
Those statistics are plain `jnp` reductions over the batch axis: under `jax.jit` with the
batch sharded over a ('data',) mesh they are statistics of the whole global batch (GSPMD
inserts the collectives), as with the paper's all-reduced cross-correlation or all-gathered
embeddings. A per-device batch statistic would silently change the loss with the device count.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jssl.losses.contrastive import l2_normalize


def _at_least_float32(x: jax.Array) -> jax.Array:
  """Half precision (or integer) inputs are promoted to float32; float32/float64 are kept."""
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _check_pair(name: str, a: jax.Array, b: jax.Array, *, min_rows: int = 1) -> None:
  if a.ndim != 2 or a.shape != b.shape:
    raise ValueError(f'{name} expects two arrays of equal shape [N, D]; got {a.shape} and '
                     f'{b.shape}.')
  if a.shape[0] < min_rows:
    raise ValueError(f'{name} needs a batch of at least {min_rows} rows for its batch '
                     f'statistics; got N={a.shape[0]}.')


def _cosine(a: jax.Array, b: jax.Array) -> jax.Array:
  """Row-wise cosine similarity of two [N, D] arrays: [N]."""
  return jnp.sum(l2_normalize(a) * l2_normalize(b), axis=-1)


def _off_diagonal_sum_of_squares(matrix: jax.Array) -> jax.Array:
  """Σ_{i≠j} m_ij² of a square matrix (masked, so large diagonals do not cancel digits)."""
  off_diagonal = jnp.where(jnp.eye(matrix.shape[0], dtype=bool), 0.0, matrix)
  return jnp.sum(jnp.square(off_diagonal))


# ---------------------------------------------------------------------- BYOL / SimSiam


def byol(p: jax.Array, z: jax.Array) -> jax.Array:
  """BYOL's regression loss (Grill et al. 2020, eq. 2): mean over N of `2 - 2 cos(p_i, z_i)`.

  Equal to the squared distance of the L2-normalised vectors. The target `z` gets a
  stop-gradient here (the target network is never trained by the loss); it is kept explicit
  even where the caller already stops gradients.

  Args:
    p: [N, D] online predictions q_θ(z_θ) (not normalised).
    z: [N, D] target projections z'_ξ of the other view (not normalised); row i is the same
      example as p's row i.

  Returns:
    Scalar float32 loss in [0, 4]. BYOL's symmetric loss is `byol(p1, z2) + byol(p2, z1)`.
  """
  _check_pair('byol', p, z)
  p = _at_least_float32(p)
  z = jax.lax.stop_gradient(_at_least_float32(z))
  return jnp.mean(2.0 - 2.0 * _cosine(p, z))


def negative_cosine(p: jax.Array, z: jax.Array) -> jax.Array:
  """SimSiam's D(p, z) (Chen & He 2021, eq. 1): mean over N of `-cos(p_i, z_i)`.

  No stop-gradient is applied: SimSiam's `D(p, stopgrad(z))` puts it on the caller's side,
  so that its no-stop-gradient ablation (which collapses) uses the same function.

  Args:
    p: [N, D] predictions h(f(x1)) (not normalised).
    z: [N, D] projections f(x2) of the other view (not normalised).

  Returns:
    Scalar float32 loss in [-1, 1].
  """
  _check_pair('negative_cosine', p, z)
  return -jnp.mean(_cosine(_at_least_float32(p), _at_least_float32(z)))


# ---------------------------------------------------------------------- Barlow Twins


def _standardize_over_batch(z: jax.Array, eps: float) -> jax.Array:
  """Each column of [N, D] to mean 0 and (biased) variance 1 over the N rows."""
  centred = z - jnp.mean(z, axis=0, keepdims=True)
  variance = jnp.mean(jnp.square(centred), axis=0, keepdims=True)  # biased: / N
  return centred * jax.lax.rsqrt(variance + eps)


def barlow_twins_terms(z1: jax.Array, z2: jax.Array, *, eps: float = 1e-5) -> dict[str, jax.Array]:
  """The two terms of the Barlow Twins loss and the cross-correlation matrix.

  Each embedding is normalised along the batch: mean 0 and standard deviation 1 over the N
  rows, with the *biased* standard deviation (divide by N), i.e. what the official code's
  non-affine `BatchNorm1d` does in training mode. With the division of `z1n.T @ z2n` by N this
  makes `c` exactly the Pearson correlation matrix: `c_ii = 1` for identical views and
  `|c_ij| <= 1`. The paper's pseudo-code divides by N after normalising with torch's unbiased
  std, so `c_ii` can then reach only (N - 1) / N and the invariance term never 0.

  Args:
    z1: [N, D] projections of the first view (N >= 2).
    z2: [N, D] projections of the second view; row i is the same example as z1's row i.
    eps: added to the variance before the square root (BatchNorm's epsilon in the official
      code); keeps a constant (collapsed) dimension finite.

  Returns:
    Dict of float32 'invariance' Σ_i (1 - c_ii)² (scalar), 'redundancy' Σ_{i≠j} c_ij²
    (scalar) and 'cross_correlation' c [D, D].
  """
  _check_pair('barlow_twins', z1, z2, min_rows=2)
  n = z1.shape[0]
  z1n = _standardize_over_batch(_at_least_float32(z1), eps)
  z2n = _standardize_over_batch(_at_least_float32(z2), eps)
  c = z1n.T @ z2n / n  # [D, D]; the contraction over the (global) batch axis
  return {'invariance': jnp.sum(jnp.square(1.0 - jnp.diagonal(c))),
          'redundancy': _off_diagonal_sum_of_squares(c),
          'cross_correlation': c}


def barlow_twins(z1: jax.Array, z2: jax.Array, *, lambd: float, eps: float = 1e-5) -> jax.Array:
  """Barlow Twins (Zbontar et al. 2021, eq. 1): `Σ_i (1 - c_ii)² + λ Σ_{i≠j} c_ij²`.

  `c = z1n.T @ z2n / N` [D, D] is the cross-correlation of the batch-normalised embeddings
  (see `barlow_twins_terms` for the normalisation). The paper's λ = 5e-3 goes with D = 8192:
  the redundancy term sums D(D - 1) entries against D of the invariance term, so a smaller D
  wants a larger λ (about 1/D, Tsai et al. 2021).

  Args:
    z1: [N, D] projections of the first view (N >= 2).
    z2: [N, D] projections of the second view; row i is the same example as z1's row i.
    lambd: weight λ of the redundancy-reduction term (>= 0).
    eps: added to each dimension's variance before normalising.

  Returns:
    Scalar float32 loss.
  """
  terms = barlow_twins_terms(z1, z2, eps=eps)
  return terms['invariance'] + lambd * terms['redundancy']


# ---------------------------------------------------------------------- VICReg


def _variance_term(z: jax.Array, eps: float) -> jax.Array:
  """v(Z) = mean_j relu(1 - sqrt(Var(z_j) + eps)), with the unbiased variance over N."""
  std = jnp.sqrt(jnp.var(z, axis=0, ddof=1) + eps)
  return jnp.mean(jax.nn.relu(1.0 - std))


def _covariance_term(z: jax.Array) -> jax.Array:
  """c(Z) = Σ_{i≠j} C(Z)_ij² / D with C(Z) the (N - 1)-normalised covariance [D, D]."""
  n, d = z.shape
  centred = z - jnp.mean(z, axis=0, keepdims=True)
  covariance = centred.T @ centred / (n - 1)
  return _off_diagonal_sum_of_squares(covariance) / d


def vicreg_terms(z1: jax.Array, z2: jax.Array, *, eps: float = 1e-4) -> dict[str, jax.Array]:
  """The three unweighted terms of VICReg (Bardes, Ponce & LeCun 2022, eqs. 1-6).

  * 'invariance' s(Z, Z') = mean over N and D of (z1 - z2)² (torch's `mse_loss`);
  * 'variance' v(Z) + v(Z'), v(Z) = mean over dimensions of relu(1 - sqrt(Var + eps)), with
    the unbiased variance over the batch (the paper's γ = 1, ε = 1e-4). The two branches are
    *summed*, as in the paper's eq. 6 and its Algorithm 1; the released `main_vicreg.py`
    averages them instead (the same as halving `var_weight`);
  * 'covariance' c(Z) + c(Z'), c(Z) = the sum of squared off-diagonal entries of Z's
    covariance matrix (normalised by N - 1), divided by D.

  Args:
    z1: [N, D] expander outputs of the first view (N >= 2).
    z2: [N, D] expander outputs of the second view; row i is the same example as z1's row i.
    eps: added to the variance inside the square root.

  Returns:
    Dict of float32 scalars 'invariance', 'variance', 'covariance'.
  """
  _check_pair('vicreg', z1, z2, min_rows=2)
  z1, z2 = _at_least_float32(z1), _at_least_float32(z2)
  return {'invariance': jnp.mean(jnp.square(z1 - z2)),
          'variance': _variance_term(z1, eps) + _variance_term(z2, eps),
          'covariance': _covariance_term(z1) + _covariance_term(z2)}


def vicreg(z1: jax.Array, z2: jax.Array, *, sim_weight: float, var_weight: float,
           cov_weight: float, eps: float = 1e-4) -> jax.Array:
  """VICReg: `λ s(Z, Z') + μ [v(Z) + v(Z')] + ν [c(Z) + c(Z')]` (paper: λ = μ = 25, ν = 1).

  Args:
    z1: [N, D] expander outputs of the first view (N >= 2).
    z2: [N, D] expander outputs of the second view.
    sim_weight: λ, weight of the invariance (mean squared error) term.
    var_weight: μ, weight of the variance term.
    cov_weight: ν, weight of the covariance term.
    eps: see `vicreg_terms`.

  Returns:
    Scalar float32 loss; `vicreg_terms` gives the unweighted terms for logging.
  """
  terms = vicreg_terms(z1, z2, eps=eps)
  return (sim_weight * terms['invariance'] + var_weight * terms['variance']
          + cov_weight * terms['covariance'])
