"""How a contrastive loss spreads its gradient over pairs: gradients with respect to cosine
similarities, measured with `jax.grad` and in closed form.

Wang & Liu 2021 ("Understanding the Behaviour of Contrastive Loss", CVPR): anchor i's term of
InfoNCE / NT-Xent, l_i = -log softmax_{j != i}(s_ij / t)[pos(i)], has
dl_i/ds_ij = P_ij / t for every negative j, with P_ij = softmax_j(s_ij / t). Each negative is
pushed away with a weight proportional to exp(s_ij / t), so a low temperature t concentrates
the gradient on the hardest (most similar) negatives and a high one spreads it evenly.
`notebooks/loss_explorer.ipynb` plots this for `jssl.losses.nt_xent`.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jssl.losses import l2_normalize

# Masks the self-similarity out of a softmax (as the losses do): exp() of it is exactly 0.
_LARGE_NEGATIVE = -1e9


def vectors_at_similarities(similarities, *, dim: int | None = None) -> jax.Array:
  """Unit vectors: an anchor, then one vector at each given cosine similarity to it.

  Row 0 is the anchor e_0; row k >= 1 is s_k e_0 + sqrt(1 - s_k^2) e_k, so cos(row 0, row k)
  is exactly s_k, two other rows k, l have cosine s_k s_l, and the rows are linearly
  independent (what `similarity_gradients` needs).

  Args:
    similarities: [K] cosine similarities to the anchor, each in (-1, 1).
    dim: D, the embedding dimension (>= K + 1; default K + 1).

  Returns:
    [K + 1, D] float32.
  """
  similarities = np.asarray(similarities, np.float64)
  if similarities.ndim != 1 or not np.all(np.abs(similarities) < 1):
    raise ValueError('vectors_at_similarities expects a 1-D array of cosine similarities in '
                     f'(-1, 1) (at +-1 a vector would coincide with the anchor); got '
                     f'{similarities!r}')
  k = similarities.shape[0]
  dim = k + 1 if dim is None else int(dim)
  if dim < k + 1:
    raise ValueError(f'vectors_at_similarities needs dim >= K + 1 = {k + 1} for the anchor and '
                     f'{k} linearly independent vectors; got dim={dim}')
  vectors = np.zeros((k + 1, dim))
  vectors[0, 0] = 1.0
  vectors[1:, 0] = similarities
  vectors[np.arange(1, k + 1), np.arange(1, k + 1)] = np.sqrt(1.0 - similarities**2)
  return jnp.asarray(vectors, jnp.float32)


def similarity_gradients(loss_fn: Callable[[jax.Array], jax.Array], z: jax.Array) -> jax.Array:
  """Gradient of a loss with respect to the cosine similarities between the rows of z.

  For a loss that depends on z only through the Gram matrix of its normalised rows (NT-Xent,
  SupCon, any loss of cosine similarities), at the normalised z,
  dL/dz = (G + G^T) z with G = dL/d(z z^T), so G + G^T = solve(z z^T, z (dL/dz)^T): one
  `jax.grad`, exact when the rows are linearly independent. Entry (i, j) of G + G^T is dL/ds_ij
  for the pair's similarity s_ij = s_ji counted once (a symmetric loss sees it twice: anchor i
  against j and anchor j against i).

  Args:
    loss_fn: maps z [M, D] to a scalar loss of the cosines of its rows.
    z: [M, D] with linearly independent rows (D >= M), e.g. from `vectors_at_similarities`.
      The rows are L2-normalised before `loss_fn` sees them.

  Returns:
    [M, M] float32, symmetric: dL/ds_ij off the diagonal, 0 on it.

  Not jitted here (`loss_fn` is usually a fresh closure); under `jax.jit` it compiles once, e.g.
  `jax.jit(lambda z, t: similarity_gradients(lambda x: loss(x, temperature=t), z))`.
  """
  z = jnp.asarray(z)
  if z.ndim != 2 or z.shape[1] < z.shape[0]:
    raise ValueError('similarity_gradients needs z of shape [M, D] with D >= M (linearly '
                     f'independent rows, e.g. from vectors_at_similarities); got {z.shape}')
  z = l2_normalize(z.astype(jnp.float32))
  grad = jax.grad(loss_fn)(z)
  both = jnp.linalg.solve(z @ z.T, z @ grad.T)  # (G + G^T)^T = G + G^T
  both = (both + both.T) / 2  # symmetric up to rounding; average the two halves
  return jnp.where(jnp.eye(z.shape[0], dtype=bool), 0.0, both)


def anchor_similarity_gradients(similarities: jax.Array, positives: jax.Array, *,
                                temperature: float | jax.Array) -> jax.Array:
  """Closed form of each anchor's InfoNCE / NT-Xent term's gradient w.r.t. its similarities.

  Anchor i is classified among every other row j != i by s_ij / temperature, its positive being
  row positives[i]: l_i = -log P_i,pos(i) with P_ij = softmax_{j != i}(s_ij / temperature), so
  dl_i/ds_ij = (P_ij - [j = pos(i)]) / temperature (Wang & Liu 2021). Negatives get P_ij / t > 0
  (pushed away, in proportion to exp(s_ij / t)); the positive gets -(1 - P_i,pos(i)) / t.
  `jssl.losses.nt_xent` is the mean of l_i over its 2N anchors with positives[i] = i +- N, so
  its gradient w.r.t. the pair similarity s_ij is (A_ij + A_ji) / 2N, A being this output.

  Args:
    similarities: [M, M] cosine similarities (the diagonal is ignored).
    positives: [M] int, the index of each row's positive (not itself).
    temperature: softmax temperature (> 0), a scalar.

  Returns:
    A: [M, M] float32 with A_ij = dl_i/ds_ij and A_ii = 0.
  """
  similarities = jnp.asarray(similarities, jnp.float32)
  m = similarities.shape[0]
  if similarities.shape != (m, m) or jnp.shape(positives) != (m,):
    raise ValueError('anchor_similarity_gradients expects similarities [M, M] and positives '
                     f'[M]; got {similarities.shape} and {jnp.shape(positives)}')
  self_mask = jnp.eye(m, dtype=bool)
  logits = jnp.where(self_mask, _LARGE_NEGATIVE, similarities / temperature)
  probs = jax.nn.softmax(logits, axis=-1)
  is_positive = jax.nn.one_hot(positives, m, dtype=jnp.float32)
  return jnp.where(self_mask, 0.0, (probs - is_positive) / temperature)
