"""Losses of graph representation learning: Deep Graph Infomax (Velickovic et al., ICLR 2019)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def dgi(pos_scores: jax.Array, neg_scores: jax.Array) -> jax.Array:
  """DGI's objective: binary cross-entropy of a discriminator telling real (node, summary)
  pairs (label 1) from corrupted ones (label 0), averaged over all 2N pairs.

  Args:
    pos_scores: [N] logits D(h_i, s) of the real graph's nodes.
    neg_scores: [M] logits D(h~_j, s) of the corrupted graph's nodes.

  Returns:
    Scalar: (sum softplus(-pos) + sum softplus(neg)) / (N + M).
  """
  pos = jax.nn.softplus(-pos_scores.astype(jnp.float32))
  neg = jax.nn.softplus(neg_scores.astype(jnp.float32))
  return (jnp.sum(pos) + jnp.sum(neg)) / (pos.size + neg.size)
