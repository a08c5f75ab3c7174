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


DIM_ESTIMATORS = ('jsd', 'infonce', 'dv')


def dim_local_global(local: jax.Array, global_: jax.Array, *, estimator: str,
                     score_clip: float | None = None, score_penalty: float = 0.0) -> jax.Array:
  """Deep InfoMax's mutual-information objective between global and local features (Hjelm et
  al. 2019), as a loss to minimise.

  The critic is separable: the score of global vector i with local feature p of image j is
  s[i, j, p] = global_[i] . local[j, p]. Pairs from the same image (i = j) are the positives
  (samples of the joint), pairs from two images the negatives (samples of the product of the
  marginals). With one location (P = 1) this is DIM's global objective between an image's
  whole feature map (summarised into `local[:, 0]`) and its global vector.

  Args:
    local: [B, P, D] local features (P = feature-map positions), already projected.
    global_: [B, D] global features, already projected.
    estimator: the MI estimator whose negative is returned:
      'jsd'     Jensen-Shannon (f-GAN form, DIM's default): E_neg[softplus(s)] +
                E_pos[softplus(-s)];
      'infonce' for each global i and location p, the softmax over the positive s[i, i, p] and
                every negative s[i, j, q], j != i, any q: -E[log softmax at the positive];
      'dv'      Donsker-Varadhan: -(E_pos[s] - log E_neg[exp(s)]).
    score_clip: c > 0 soft-clips every score to c * tanh(s / c) before the estimator (AMDIM,
      Bachman et al. 2019, c = 20); None leaves them.
    score_penalty: lambda >= 0 adds lambda * mean(s^2) over every raw score (AMDIM's 4e-2),
      which keeps the critic's scale from drifting.

  Returns:
    Scalar float32 loss (lower = more information under the estimator).

  Raises:
    ValueError: shapes that do not fit, a batch of one image (no negatives), or an unknown
      estimator.
  """
  local, global_ = jnp.asarray(local), jnp.asarray(global_)
  if local.ndim != 3 or global_.ndim != 2 or local.shape[0] != global_.shape[0] or (
      local.shape[2] != global_.shape[1]):
    raise ValueError('dim_local_global: local must be [B, P, D] and global_ [B, D] with the same '
                     f'B and D; got {local.shape} and {global_.shape}.')
  if local.shape[0] < 2:
    raise ValueError('dim_local_global: the negatives come from the other images of the batch; '
                     f'a batch of {local.shape[0]} has none.')
  if estimator not in DIM_ESTIMATORS:
    raise ValueError(f'dim_local_global: estimator={estimator!r} is unknown; choose one of '
                     f'{list(DIM_ESTIMATORS)}.')
  if score_clip is not None and not score_clip > 0:
    raise ValueError(f'dim_local_global: score_clip={score_clip} must be > 0 (or None).')
  if not score_penalty >= 0:
    raise ValueError(f'dim_local_global: score_penalty={score_penalty} must be >= 0.')
  dtype = jnp.promote_types(local.dtype, jnp.float32)
  scores = jnp.einsum('id,jpd->ijp', global_.astype(dtype), local.astype(dtype))  # [B, B, P]
  penalty = score_penalty * jnp.mean(scores**2) if score_penalty else 0.0
  if score_clip is not None:
    scores = score_clip * jnp.tanh(scores / score_clip)
  return penalty + _estimate(scores, estimator)


def _estimate(scores: jax.Array, estimator: str) -> jax.Array:
  """`dim_local_global`'s estimator on the score tensor s[i, j, p] (positives at i = j)."""
  batch, _, positions = scores.shape
  same = jnp.eye(batch, dtype=bool)[:, :, None]
  positive = jnp.diagonal(scores, axis1=0, axis2=1).T  # [B, P]: s[i, i, p]
  num_negative = batch * (batch - 1) * positions
  if estimator == 'jsd':
    negative_term = jnp.sum(jnp.where(same, 0.0, jax.nn.softplus(scores))) / num_negative
    return negative_term + jnp.mean(jax.nn.softplus(-positive))
  negatives = jnp.where(same, -jnp.inf, scores)  # [B, B, P]
  if estimator == 'dv':
    log_mean_exp = jax.nn.logsumexp(negatives) - jnp.log(float(num_negative))
    return log_mean_exp - jnp.mean(positive)
  # InfoNCE: every global i's negatives are all of its scores with other images.
  negative_lse = jax.nn.logsumexp(negatives.reshape(batch, -1), axis=-1)  # [B]
  lse = jnp.logaddexp(positive, negative_lse[:, None])  # [B, P]
  return jnp.mean(lse - positive)
