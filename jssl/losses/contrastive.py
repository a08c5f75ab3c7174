"""Contrastive losses.

All losses take global arrays: under `jax.jit` with the batch sharded over a ('data',) mesh,
the similarity matrix spans the whole global batch, so every anchor sees negatives from every
device without hand-written collectives.
"""

from __future__ import annotations

import numbers

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


def _at_least_float32(x: jax.Array) -> jax.Array:
  """Casts half-precision (or integer) inputs up to float32; float32/float64 are kept."""
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _check_query_key_negatives(
    name: str, query: jax.Array, key: jax.Array, negatives: jax.Array
) -> None:
  """Raises ValueError unless query, key are [N, D] and negatives [K, D] or [N, K, D], K >= 1."""
  if query.ndim != 2 or key.shape != query.shape:
    raise ValueError(
        f'{name} expects query and key of equal shape [N, D]; got {query.shape}, {key.shape}')
  n, d = query.shape
  if negatives.ndim == 2:
    fits = negatives.shape[1] == d
  elif negatives.ndim == 3:
    fits = negatives.shape[0] == n and negatives.shape[2] == d
  else:
    fits = False
  if not fits or negatives.shape[-2] < 1:
    raise ValueError(
        f'{name} expects negatives of shape [K, D] (shared by all queries) or [N, K, D] (one set '
        f'per query) with K >= 1, N = {n} and D = {d} as in query {query.shape}; '
        f'got negatives {negatives.shape}')


def _query_key_negative_similarities(
    query: jax.Array, key: jax.Array, negatives: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Cosine similarities q.k [N] and q.n [N, K] (shapes already checked)."""
  q = l2_normalize(_at_least_float32(query))
  k = l2_normalize(_at_least_float32(key))
  neg = l2_normalize(_at_least_float32(negatives))
  positive = jnp.sum(q * k, axis=-1)  # [N]
  if neg.ndim == 2:
    negative = q @ neg.T  # [N, K]
  else:
    negative = jnp.einsum('nd,nkd->nk', q, neg)  # [N, K]
  return positive, negative


def info_nce(
    query: jax.Array, key: jax.Array, negatives: jax.Array, *, temperature: float
) -> jax.Array:
  """InfoNCE as used by MoCo (He et al. 2020; van den Oord et al. 2018).

  Each query is classified among its key (the positive, class 0) and K negatives by cosine
  similarity / temperature. No stop-gradient is applied here: the method decides (MoCo stops
  gradients through the momentum encoder's key and through the queue).

  Args:
    query: [N, D] query projections (not normalised).
    key: [N, D] positive keys; row i is the positive of query row i.
    negatives: [K, D] negatives shared by all queries (MoCo's queue) or [N, K, D] a separate set
      of K negatives per query (e.g. drawn from a memory bank).
    temperature: softmax temperature (> 0), e.g. 0.07 - 0.2.

  Returns:
    Scalar loss: the mean over the N queries of the cross-entropy of the logits
    [q.k, q.n_1, ..., q.n_K] / temperature with label 0 (computed in at least float32).
  """
  _check_query_key_negatives('info_nce', query, key, negatives)
  positive, negative = _query_key_negative_similarities(query, key, negatives)
  logits = jnp.concatenate([positive[:, None], negative], axis=-1) / temperature  # [N, 1 + K]
  return -jnp.mean(jax.nn.log_softmax(logits, axis=-1)[:, 0])


def nce(
    query: jax.Array,
    key: jax.Array,
    negatives: jax.Array,
    *,
    temperature: float,
    log_partition: float | jax.Array,
    num_examples: int,
) -> jax.Array:
  """Noise-contrastive estimation of instance discrimination (NPID, Wu et al. 2018; PIRL).

  With s(x) = q.x / temperature on L2-normalised vectors, the model probability of x is
  P(x) = exp(s(x)) / Z, the noise distribution is uniform, P_n = 1 / num_examples, and with
  m = K noise samples per query the posterior that x came from the data is
  h(x) = P(x) / (P(x) + m P_n). The per-query loss is -log h(key) - sum_k log(1 - h(n_k)),
  evaluated in log space: with c = log(m P_n),
  log h = log P - logaddexp(log P, c) and log(1 - h) = c - logaddexp(log P, c).

  Args:
    query: [N, D] query embeddings (not normalised).
    key: [N, D] positives (e.g. the memory-bank entries of the same images).
    negatives: [K, D] noise samples shared by all queries or [N, K, D] one set per query.
    temperature: temperature (> 0), e.g. 0.07.
    log_partition: log Z, a scalar (may be a traced array). NPID estimates Z once from the first
      batch; PIRL uses log_partition = 0.
    num_examples: size of the data set the noise is drawn from (the memory bank's length).

  Returns:
    Scalar loss averaged over the N queries (computed in at least float32).
  """
  _check_query_key_negatives('nce', query, key, negatives)
  if jnp.ndim(log_partition) != 0:
    raise ValueError(f'nce expects a scalar log_partition; got shape {jnp.shape(log_partition)}')
  if isinstance(num_examples, numbers.Real) and num_examples <= 0:
    raise ValueError(f'nce expects num_examples > 0; got {num_examples}')
  positive, negative = _query_key_negative_similarities(query, key, negatives)
  # c = log(m P_n) with m = K noise samples and P_n = 1 / num_examples.
  log_noise = jnp.log(negative.shape[-1] / jnp.asarray(num_examples, positive.dtype))
  log_p_positive = positive / temperature - log_partition  # [N]
  log_p_negative = negative / temperature - log_partition  # [N, K]
  log_h_positive = log_p_positive - jnp.logaddexp(log_p_positive, log_noise)
  log_one_minus_h_negative = log_noise - jnp.logaddexp(log_p_negative, log_noise)
  return -jnp.mean(log_h_positive + jnp.sum(log_one_minus_h_negative, axis=-1))


def supcon(z: jax.Array, labels: jax.Array, *, temperature: float) -> jax.Array:
  """Supervised contrastive loss, the L_out form of Khosla et al. 2020.

  For anchor i, A(i) is every other sample and P(i) = {p != i : labels[p] == labels[i]}:
  loss_i = -1/|P(i)| sum_{p in P(i)} log(exp(z_i.z_p / t) / sum_{a in A(i)} exp(z_i.z_a / t))
  on L2-normalised z. With labels = concat([arange(N), arange(N)]) this is SimCLR's NT-Xent.

  Args:
    z: [M, D] projections of all views, flattened (not normalised).
    labels: [M] integer labels; samples with equal labels are positives of each other.
    temperature: softmax temperature (> 0), e.g. 0.1.

  Returns:
    Scalar loss: the mean of loss_i over the anchors with at least one positive (anchors whose
    label occurs once contribute nothing); 0.0 if no anchor has a positive.
  """
  if z.ndim != 2 or labels.shape != z.shape[:1]:
    raise ValueError(
        f'supcon expects z of shape [M, D] and labels of shape [M]; got {z.shape}, {labels.shape}')
  labels = jnp.asarray(labels)
  m = z.shape[0]
  z = l2_normalize(_at_least_float32(z))
  self_mask = jnp.eye(m, dtype=bool)
  logits = (z @ z.T) / temperature  # [M, M]
  logits = jnp.where(self_mask, _LARGE_NEGATIVE, logits)
  log_probs = jax.nn.log_softmax(logits, axis=-1)  # denominator over A(i): self is ~exp(-1e9)
  positive_mask = (labels[:, None] == labels[None, :]) & ~self_mask  # [M, M]
  num_positives = jnp.sum(positive_mask, axis=-1)  # [M]
  sum_log_probs = jnp.sum(jnp.where(positive_mask, log_probs, 0.0), axis=-1)
  per_anchor = -sum_log_probs / jnp.maximum(num_positives, 1)
  has_positive = num_positives > 0
  num_anchors = jnp.sum(has_positive)
  return jnp.sum(jnp.where(has_positive, per_anchor, 0.0)) / jnp.maximum(num_anchors, 1)


def _euclidean_distance(x: jax.Array, y: jax.Array) -> jax.Array:
  """Row-wise ||x - y||_2 over the last axis, with gradient 0 (not NaN) where x == y."""
  squared = jnp.sum(jnp.square(x - y), axis=-1)
  positive = squared > 0
  # Double where: sqrt never sees 0, so its infinite derivative never enters the chain rule.
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def triplet(
    anchor: jax.Array, positive: jax.Array, negative: jax.Array, *, margin: float
) -> jax.Array:
  """Triplet margin loss (Weinberger & Saul 2009; Schroff et al. 2015) on Euclidean distances.

  Distances are not squared and inputs are not normalised; normalise first if the embedding
  lives on the sphere. Where two rows coincide the distance's gradient is taken as 0.

  Args:
    anchor: [N, D] anchor embeddings.
    positive: [N, D] embeddings of the same identity as the anchors.
    negative: [N, D] embeddings of a different identity.
    margin: margin (>= 0) by which d(a, n) should exceed d(a, p).

  Returns:
    Scalar mean over N of max(0, d(a, p) - d(a, n) + margin).
  """
  if anchor.ndim != 2 or positive.shape != anchor.shape or negative.shape != anchor.shape:
    raise ValueError(
        'triplet expects anchor, positive and negative of equal shape [N, D]; got '
        f'{anchor.shape}, {positive.shape}, {negative.shape}')
  anchor, positive, negative = map(_at_least_float32, (anchor, positive, negative))
  d_positive = _euclidean_distance(anchor, positive)
  d_negative = _euclidean_distance(anchor, negative)
  return jnp.mean(jax.nn.relu(d_positive - d_negative + margin))


def margin_contrastive(
    x1: jax.Array, x2: jax.Array, same: jax.Array, *, margin: float
) -> jax.Array:
  """Margin-based contrastive loss of Hadsell, Chopra & LeCun 2006 (DrLIM).

  Per pair, with D = ||x1 - x2||_2: L = same * D^2 / 2 + (1 - same) * max(0, margin - D)^2 / 2.
  Similar pairs are pulled together; dissimilar pairs are pushed apart until D >= margin. At
  D = 0 the gradient is finite (D's gradient is taken as 0 there).

  Args:
    x1: [N, D] first embeddings of each pair.
    x2: [N, D] second embeddings.
    same: [N] 1 for a similar pair, 0 for a dissimilar one (bool, int or float).
    margin: margin (> 0) beyond which dissimilar pairs cost nothing.

  Returns:
    Scalar mean of L over the N pairs.
  """
  if x1.ndim != 2 or x2.shape != x1.shape or same.shape != x1.shape[:1]:
    raise ValueError(
        'margin_contrastive expects x1, x2 of equal shape [N, D] and same of shape [N]; got '
        f'{x1.shape}, {x2.shape}, {same.shape}')
  x1, x2 = _at_least_float32(x1), _at_least_float32(x2)
  same = jnp.asarray(same).astype(x1.dtype)
  squared = jnp.sum(jnp.square(x1 - x2), axis=-1)  # D^2 directly: smooth at D = 0
  distance = _euclidean_distance(x1, x2)
  pull = 0.5 * squared
  push = 0.5 * jnp.square(jax.nn.relu(margin - distance))
  return jnp.mean(same * pull + (1.0 - same) * push)


def batch_info_nce(query: jax.Array, key: jax.Array, *, temperature: float) -> jax.Array:
  """InfoNCE with in-batch keys: query i's positive is key i, the other N - 1 keys its negatives.

  The contrastive loss of MoCo v3 (Chen, Xie & He 2021, before its 2·temperature scaling) and
  of NNCLR (Dwibedi et al. 2021, with nearest neighbours as queries). Unlike `nt_xent`, queries
  are not contrasted with each other.

  Args:
    query: [N, D] (not normalised).
    key: [N, D]; row i is the positive of query row i.
    temperature: softmax temperature (> 0).

  Returns:
    Scalar float32: mean over the N queries of -log softmax_j(q_i·k_j / temperature)[i].
  """
  if query.ndim != 2 or query.shape != key.shape:
    raise ValueError(f'batch_info_nce expects query, key of equal shape [N, D]; got '
                     f'{query.shape}, {key.shape}')
  q = l2_normalize(query.astype(jnp.float32))
  k = l2_normalize(key.astype(jnp.float32))
  log_probs = jax.nn.log_softmax((q @ k.T) / temperature, axis=-1)
  return -jnp.mean(jnp.diagonal(log_probs))
