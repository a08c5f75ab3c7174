"""Clustering losses: SwAV's swapped prediction with Sinkhorn codes, and DINO's self-distillation.

Both compare a soft assignment of one view to K prototypes or output units (the target: codes,
teacher probabilities) with the softmax prediction of another view of the same image. All
statistics over the batch (Sinkhorn's column sums, DINO's centre) are plain `jnp` reductions
over the whole batch axis: under `jax.jit` with the batch sharded over a ('data',) mesh they
are global-batch statistics (GSPMD inserts the all-reduce that SwAV's code writes by hand), not
per-device ones.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _at_least_float32(x: jax.Array) -> jax.Array:
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def sinkhorn(scores: jax.Array, *, epsilon: float, num_iters: int) -> jax.Array:
  """Equipartitioned soft codes of SwAV (Caron et al. 2020, Sec. 3.1 and Algorithm 1).

  With Q = exp(scores / epsilon)ᵀ [K, B] normalised to total 1, `num_iters` rounds scale each
  prototype's row to sum 1/K and then each sample's column to sum 1/B; the result is multiplied
  by B, so that every sample's codes sum to 1, and returned transposed back to [B, K]. When the
  iterations have converged every prototype receives B / K of the batch's mass.

  The computation is the same algorithm in the log domain (scaling a row is subtracting its
  log-sum, a `logsumexp`) in at least float32. That is the max-subtracted form: `logsumexp`
  subtracts each row's maximum, so no exp overflows and no row whose entries all underflow
  `exp` turns into 0 / 0 (a risk of the plain form when epsilon is small or the scores are not
  cosines). The initial normalisation to total 1 is kept as in the paper; it is a constant
  shift that the first prototype normalisation removes anyway. Sums over the batch are over
  the global batch (see the module docstring); no gradient is stopped here, callers stop it.

  Args:
    scores: [B, K] prototype scores (SwAV: cosine similarities of unit projections and unit
      prototypes); B may include queued samples.
    epsilon: entropy regularisation (> 0; SwAV: 0.05). Smaller gives sharper codes.
    num_iters: Sinkhorn-Knopp rounds (>= 1; SwAV: 3).

  Returns:
    [B, K] float32 (float64 for float64 input) codes; every row sums to 1.
  """
  if scores.ndim != 2:
    raise ValueError(f'sinkhorn expects scores [B, K]; got shape {scores.shape}')
  if num_iters < 1:
    raise ValueError(f'sinkhorn needs num_iters >= 1 (SwAV uses 3); got {num_iters}')
  batch, num_prototypes = scores.shape
  log_q = _at_least_float32(scores) / epsilon
  log_q = log_q - jax.nn.logsumexp(log_q)  # total mass 1

  def one_round(_, log_q):
    # Each prototype (column of the [B, K] layout) to 1 / K, then each sample (row) to 1 / B.
    log_q = log_q - jax.nn.logsumexp(log_q, axis=0, keepdims=True) - jnp.log(num_prototypes)
    return log_q - jax.nn.logsumexp(log_q, axis=1, keepdims=True) - jnp.log(batch)

  # A loop, not unrolled: many iterations (converged codes) would otherwise be slow to compile.
  log_q = jax.lax.fori_loop(0, num_iters, one_round, log_q)
  return jnp.exp(log_q + jnp.log(batch))


def _cross_entropy(targets: jax.Array, logits: jax.Array) -> jax.Array:
  """-Σ_k targets log softmax(logits), averaged over the batch: [B, K] x [B, K] -> scalar."""
  return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1))


def swav_multicrop(scores: jax.Array, *, num_global: int, temperature: float, epsilon: float,
                   num_iters: int, queue_scores: jax.Array | None = None) -> jax.Array:
  """SwAV's swapped prediction over V views, of which the first `num_global` get codes.

  For each global view i the codes q_i = sinkhorn(scores_i) are computed without gradient and
  predicted by every other view v != i (local crops included) through
  p_v = softmax(scores_v / temperature). As in SwAV's code (`main_swav.py`) the loss is

    (1 / num_global) Σ_i (1 / (V - 1)) Σ_{v != i} mean_b [-Σ_k q_i[b, k] log p_v[b, k]],

  i.e. the mean over the num_global · (V - 1) (code, prediction) pairs; for two views it is
  `swav`. The paper's Eq. (1) writes the two-view loss as the sum ℓ(z_t, q_s) + ℓ(z_s, q_t); the
  code (and this function) averages the pairs instead, which halves it.

  With a queue, the scores of the queued projections of global view i against the current
  prototypes are placed before the batch's scores for Sinkhorn (so the equipartition is over
  queue + batch), and only the batch rows' codes are used.

  Args:
    scores: [V, B, K] prototype scores of every view (global views first); row b of every view
      is the same image.
    num_global: number of leading views whose codes are targets (SwAV: 2), 1 <= num_global <= V.
    temperature: softmax temperature of the predictions (SwAV: 0.1).
    epsilon: Sinkhorn's entropy regularisation (SwAV: 0.05).
    num_iters: Sinkhorn rounds (SwAV: 3).
    queue_scores: optional [num_global, Q, K] scores of each global view's queue.

  Returns:
    Scalar float32 loss.
  """
  if scores.ndim != 3:
    raise ValueError(f'swav_multicrop expects scores [V, B, K]; got shape {scores.shape}')
  num_views = scores.shape[0]
  if not 1 <= num_global <= num_views or num_views < 2:
    raise ValueError(f'swav_multicrop needs V >= 2 views and 1 <= num_global <= V; got '
                     f'V={num_views}, num_global={num_global}')
  if queue_scores is not None and (queue_scores.ndim != 3 or
                                   queue_scores.shape[0] != num_global or
                                   queue_scores.shape[2] != scores.shape[2]):
    raise ValueError(f'swav_multicrop expects queue_scores [num_global={num_global}, Q, '
                     f'K={scores.shape[2]}]; got shape {queue_scores.shape}')
  scores = _at_least_float32(scores)
  batch = scores.shape[1]
  logits = scores / temperature
  total = 0.0
  for i in range(num_global):
    assign = jax.lax.stop_gradient(scores[i])
    if queue_scores is not None:
      queued = jax.lax.stop_gradient(_at_least_float32(queue_scores[i]))
      assign = jnp.concatenate([queued.astype(assign.dtype), assign], axis=0)
    codes = sinkhorn(assign, epsilon=epsilon, num_iters=num_iters)[-batch:]
    codes = jax.lax.stop_gradient(codes)
    total += sum(_cross_entropy(codes, logits[v]) for v in range(num_views) if v != i) / (
        num_views - 1)
  return total / num_global


def swav(scores1: jax.Array, scores2: jax.Array, *, temperature: float, epsilon: float,
         num_iters: int) -> jax.Array:
  """SwAV's swapped prediction for two views (Caron et al. 2020, Eq. (1)-(3)).

  `(ℓ(scores1, q2) + ℓ(scores2, q1)) / 2` with q_i = sinkhorn(scores_i) (no gradient) and
  ℓ(s, q) = mean_b [-Σ_k q log softmax(s / temperature)]. The average of the two terms is the
  normalisation of SwAV's code; the paper's Eq. (1) is their sum (twice this).

  Args:
    scores1: [B, K] prototype scores of view 1 (cosine similarities).
    scores2: [B, K] of view 2, same images row by row.
    temperature: softmax temperature (SwAV: 0.1).
    epsilon: Sinkhorn's entropy regularisation (SwAV: 0.05).
    num_iters: Sinkhorn rounds (SwAV: 3).

  Returns:
    Scalar float32 loss.
  """
  if scores1.ndim != 2 or scores1.shape != scores2.shape:
    raise ValueError(f'swav expects scores1, scores2 of equal shape [B, K]; got {scores1.shape}, '
                     f'{scores2.shape}')
  return swav_multicrop(jnp.stack([scores1, scores2]), num_global=2, temperature=temperature,
                        epsilon=epsilon, num_iters=num_iters)


def dino(student_logits: jax.Array, teacher_logits: jax.Array, center: jax.Array, *,
         student_temp: float, teacher_temp: float | jax.Array) -> jax.Array:
  """DINO's self-distillation cross-entropy (Caron et al. 2021, Eq. (1)-(2) and Algorithm 1).

  The teacher's targets are P_t = softmax((teacher - center) / teacher_temp) with no gradient
  (to the teacher or the centre); the student's predictions log softmax(student / student_temp).
  Teacher view i is the same crop as student view i (the global crops come first), so pairs
  with v == i are skipped; the loss is the mean over the remaining pairs (i, v) of
  mean_n [-Σ_k P_t[i, n, k] log P_s[v, n, k]], as in DINO's code.

  Args:
    student_logits: [Vs, N, K] student outputs of every view (global views first).
    teacher_logits: [Vt, N, K] teacher outputs of the global views, Vt <= Vs.
    center: [K] the running centre of the teacher outputs (`dino_center_update`).
    student_temp: student temperature (DINO: 0.1).
    teacher_temp: teacher temperature, a float or traced scalar (DINO: 0.04 -> 0.07 warm-up).

  Returns:
    Scalar float32 loss.
  """
  if student_logits.ndim != 3 or teacher_logits.ndim != 3:
    raise ValueError(f'dino expects student [Vs, N, K] and teacher [Vt, N, K] logits; got '
                     f'{student_logits.shape}, {teacher_logits.shape}')
  num_student, n, k = student_logits.shape
  num_teacher = teacher_logits.shape[0]
  if teacher_logits.shape[1:] != (n, k) or num_teacher > num_student or center.shape[-1] != k:
    raise ValueError(f'dino: teacher logits {teacher_logits.shape} must be [Vt <= {num_student}, '
                     f'{n}, {k}] and center [{k}]; got center {center.shape}')
  num_pairs = num_teacher * num_student - num_teacher
  if num_pairs == 0:
    raise ValueError('dino needs a student view that differs from a teacher view (Vs >= 2).')
  teacher = _at_least_float32(jax.lax.stop_gradient(teacher_logits))
  center = jax.lax.stop_gradient(_at_least_float32(center)).reshape(k)
  targets = jax.lax.stop_gradient(jax.nn.softmax((teacher - center) / teacher_temp, axis=-1))
  log_probs = jax.nn.log_softmax(_at_least_float32(student_logits) / student_temp, axis=-1)
  # cross[i, v] = mean_n -Σ_k P_t[i, n, k] log P_s[v, n, k]: one contraction for every pair.
  cross = -jnp.einsum('ink,vnk->iv', targets, log_probs) / n
  not_same = jnp.arange(num_teacher)[:, None] != jnp.arange(num_student)[None, :]
  return jnp.sum(jnp.where(not_same, cross, 0.0)) / num_pairs


def dino_center_update(center: jax.Array, teacher_logits: jax.Array, *,
                       momentum: float) -> jax.Array:
  """DINO's centre EMA: `momentum * center + (1 - momentum) * mean of the teacher outputs`.

  The mean is over the teacher's views and the global batch (DINO all-reduces it over GPUs).

  Args:
    center: [K] current centre.
    teacher_logits: [Vt, N, K] teacher outputs of this step (no gradient flows).
    momentum: centre momentum in [0, 1] (DINO: 0.9).

  Returns:
    The new centre [K], float32.
  """
  if teacher_logits.ndim != 3 or teacher_logits.shape[-1] != center.shape[-1]:
    raise ValueError(f'dino_center_update expects teacher logits [Vt, N, K={center.shape[-1]}]; '
                     f'got {teacher_logits.shape}')
  batch_center = jnp.mean(_at_least_float32(jax.lax.stop_gradient(teacher_logits)), axis=(0, 1))
  return momentum * _at_least_float32(center) + (1.0 - momentum) * batch_center
