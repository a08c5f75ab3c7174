"""Losses of graph representation learning: Deep Graph Infomax (Velickovic et al., ICLR 2019)
and the edge reconstruction of graph autoencoders (Kipf & Welling 2016)."""

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


def link_reconstruction(pos_scores: jax.Array, neg_scores: jax.Array) -> jax.Array:
  """A graph autoencoder's edge reconstruction loss (GAE / VGAE, Kipf & Welling 2016) with
  sampled non-edges: binary cross-entropy of the decoder's logits, edges labelled 1 and
  non-edges 0, each set averaged on its own and the two averages summed, so that the (much
  rarer) edges weigh as much as the sampled non-edges whatever their counts — the role of the
  paper's positive-class weight on the dense adjacency.

  Args:
    pos_scores: [E] logits of node pairs that are edges (e.g. z_i . z_j, the inner-product
      decoder).
    neg_scores: [M] logits of sampled pairs that stand for non-edges.

  Returns:
    Scalar float32: mean softplus(-pos) + mean softplus(neg).
  """
  pos = jax.nn.softplus(-jnp.asarray(pos_scores).astype(jnp.float32))
  neg = jax.nn.softplus(jnp.asarray(neg_scores).astype(jnp.float32))
  return jnp.mean(pos) + jnp.mean(neg)
