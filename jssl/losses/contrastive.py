"""Contrastive losses.

All losses take global arrays: under `jax.jit` with the batch sharded over a ('data',) mesh,
the similarity matrix spans the whole global batch, so every anchor sees negatives from every
device without hand-written collectives.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Added to self-similarity logits instead of -inf: exp() of it underflows to exactly 0 in
# float32, yet gradients stay finite (no inf - inf).
_LARGE_NEGATIVE = -1e9


def l2_normalize(x: jax.Array, *, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """Divides `x` by its L2 norm along `axis` (safe at zero)."""
  norm_sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(norm_sq, eps * eps))


def nt_xent(z1: jax.Array, z2: jax.Array, *, temperature: float) -> jax.Array:
  """NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al. 2020).

  The 2N projections are L2-normalised; each of the 2N anchors is classified against the other
  2N - 1 samples by cosine similarity / temperature, its positive being the other view of the
  same image and the remaining 2N - 2 samples its negatives.

  Args:
    z1: [N, D] projections of the first view (not normalised).
    z2: [N, D] projections of the second view; row i is the same image as z1's row i.
    temperature: softmax temperature (> 0), e.g. 0.1 - 0.5.

  Returns:
    Scalar float32 loss averaged over all 2N anchors.
  """
  if z1.ndim != 2 or z1.shape != z2.shape:
    raise ValueError(f'nt_xent expects z1, z2 of equal shape [N, D]; got {z1.shape}, {z2.shape}')
  n = z1.shape[0]
  z = l2_normalize(jnp.concatenate([z1, z2], axis=0).astype(jnp.float32))  # [2N, D]
  logits = (z @ z.T) / temperature  # [2N, 2N]
  logits = jnp.where(jnp.eye(2 * n, dtype=bool), _LARGE_NEGATIVE, logits)
  positive = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(0, n)])  # anchor i <-> i +- N
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.mean(jnp.take_along_axis(log_probs, positive[:, None], axis=-1))
