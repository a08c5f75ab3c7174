"""Context-instance losses: predicting the future or the whole from a part (CPC, Deep InfoMax)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def cpc(context_predictions: jax.Array, future: jax.Array, *, temperature: float = 1.0,
        mask: jax.Array | None = None) -> jax.Array:
  """InfoNCE of Contrastive Predictive Coding (van den Oord, Li & Vinyals 2018).

  Each prediction made from the context at step t for k + 1 steps ahead is scored against
  every encoding of the batch, at every position of every sequence, by the log-bilinear
  critic f = exp(prediction . encoding / temperature) (the predictions already are W_k c_t,
  so the dot product is the paper's z^T W_k c); the true future encoding is the positive,
  all others — other positions of the same sequence and every position of the other
  sequences — are the negatives. For images, the sequences are the columns of a patch grid
  and the steps its rows (CPC's image version: rows above predict the rows below).

  Args:
    context_predictions: [K, B, T, D]; entry (k, b, t) predicts future[b, t + k + 1] from the
      context up to step t (entries with t + k + 1 >= T are ignored).
    future: [B, T, D] encodings of every step (the positives and the negatives).
    temperature: divides the scores (> 0); CPC's critic is 1.
    mask: optional bool [B, T], True at the real steps of padded sequences: a prediction
      counts only when its own step and its target are real, and padding is never a negative.

  Returns:
    Scalar, float32: the mean over the counted (k, b, t) of the cross-entropy of the softmax
    over the batch's B * T encodings (minus the masked ones) at the true future.

  Raises:
    ValueError: shapes that do not fit, K >= T, or a temperature <= 0.
  """
  context_predictions, future = jnp.asarray(context_predictions), jnp.asarray(future)
  if context_predictions.ndim != 4 or future.ndim != 3:
    raise ValueError('cpc: context_predictions must be [K, B, T, D] and future [B, T, D]; got '
                     f'{context_predictions.shape} and {future.shape}.')
  num_k, batch, steps, dim = context_predictions.shape
  if future.shape != (batch, steps, dim):
    raise ValueError(f'cpc: future {future.shape} must be [B, T, D] = {(batch, steps, dim)} to '
                     f'match context_predictions {context_predictions.shape}.')
  if num_k >= steps:
    raise ValueError(f'cpc: predicting up to {num_k} steps ahead needs T > {num_k} steps; got '
                     f'T={steps}.')
  if mask is not None and mask.shape != (batch, steps):
    raise ValueError(f'cpc: mask {mask.shape} must be [B, T] = {(batch, steps)}.')
  if not temperature > 0:
    raise ValueError(f'cpc: temperature={temperature} must be > 0.')
  dtype = jnp.promote_types(future.dtype, jnp.float32)
  preds = context_predictions.astype(dtype)
  z = future.astype(dtype)
  valid = jnp.ones((batch, steps), bool) if mask is None else mask.astype(bool)
  total, count = 0.0, 0
  for k in range(num_k):
    shift = k + 1
    query = preds[k, :, :steps - shift]  # [B, T - shift, D]
    scores = jnp.einsum('btd,nsd->btns', query, z) / temperature  # [B, T', B, T]
    scores = jnp.where(valid[None, None], scores, -jnp.inf)
    lse = jax.nn.logsumexp(scores.reshape(scores.shape[:2] + (-1,)), axis=-1)
    positive = jnp.sum(query * z[:, shift:], axis=-1) / temperature
    counted = valid[:, :steps - shift] & valid[:, shift:]
    total += jnp.sum(jnp.where(counted, lse - positive, 0.0))
    count += jnp.sum(counted)
  return (total / jnp.maximum(count, 1)).astype(dtype)
