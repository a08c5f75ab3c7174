"""Losses of language models: masked-LM cross-entropy (Devlin et al., BERT, 2019)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def mlm_loss(logits: jax.Array, targets: jax.Array, weights: jax.Array) -> jax.Array:
  """Mean cross-entropy over the selected (masked) positions of a batch.

  Args:
    logits: [B, L, V] predictions at every position.
    targets: [B, L] int32 the original token at each position.
    weights: [B, L] 1.0 where the position was selected for prediction, 0.0 elsewhere.

  Returns:
    Scalar: sum(weights * CE) / max(sum(weights), 1): every selected position of the global
    batch counts once, whichever example it is in.
  """
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
  weights = weights.astype(jnp.float32)
  return jnp.sum(ce * weights) / jnp.maximum(jnp.sum(weights), 1.0)
