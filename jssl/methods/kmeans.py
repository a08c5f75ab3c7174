"""k-means (Lloyd's algorithm) in JAX, with Faiss's handling of empty clusters.

DeepCluster (Caron et al. 2018) and Local Aggregation (Zhuang et al. 2019) cluster features
or a memory bank with Faiss's k-means; this module is the same algorithm as pure, jit-able
JAX functions, so the clustering runs on the accelerator inside a method's `epoch_start`.

- Initialisation: 'random' (default) picks `num_clusters` distinct rows of `x` uniformly at
  random, as Faiss does (DeepCluster and LA use Faiss's default); 'kmeans++' (Arthur &
  Vassilvitskii 2007) picks the first row uniformly and each next one with probability
  proportional to its distance to the nearest row already picked. k-means++ is a sequential
  loop over the K centroids, O(K N D) with K dependent steps, so it is meant for small K.
- One Lloyd iteration: assign every point to its nearest centroid, move each centroid to the
  mean of its points, then re-seed the empty clusters. After `num_iters` iterations, the
  points are assigned once more to the final centroids (Faiss's users do the same: train,
  then search the centroids), which gives the returned assignments and inertia.
- Metrics: 'euclidean' (squared Euclidean distance, Faiss's IndexFlatL2) or 'cosine'
  (spherical k-means: rows of `x` and every centroid are L2-normalised, the distance is
  1 - cosine; Faiss's `spherical=True`).
- Empty clusters (Faiss's `split_clusters`, which DeepCluster's k-means runs): after a centroid
  update, every empty cluster i takes over a copy of a non-empty cluster j's centroid, and the
  two copies are pushed apart by a small symmetric perturbation, coordinate d multiplied by
  (1 + eps) for i and (1 - eps) for j on even d, the other way round on odd d (eps = 1/1024
  as in Faiss), so that the next assignment splits j's points between them. j is drawn with
  probability proportional to (size_j - 1): Faiss scans the clusters cyclically from 0 and
  accepts cluster j with probability (size_j - 1) / (N - K), a rejection sampler for roughly
  the same distribution (biased towards low indices); here the draw is exact. Clusters of one
  point are never split. The sizes are then updated as Faiss does (i gets floor(size_j / 2),
  j keeps the rest) and the next empty cluster is handled, in index order, until none is
  left. A split of a centroid at the origin (or of identical points) cannot separate anything;
  such degenerate inputs can still end with an empty cluster.

Sharding: every function works on global arrays. With `x` sharded along N over a mesh, the
distances and assignments stay sharded and the per-cluster sums are one-hot matmuls that GSPMD
reduces across devices; centroids are replicated. Memory is O(N K) for the distance matrix.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

INITS = ('random', 'kmeans++')
METRICS = ('euclidean', 'cosine')
# Faiss's relative perturbation of a split centroid (EPS in faiss/Clustering.cpp).
SPLIT_EPS = 1.0 / 1024

_HIGHEST = jax.lax.Precision.HIGHEST


class KMeansResult(NamedTuple):
  """What `kmeans` returns.

  Attributes:
    centroids: [K, D] float32 (unit rows for metric 'cosine').
    assignments: [N] int32, the nearest final centroid of each point.
    inertia: float32 scalar, the sum over points of the distance to their centroid (squared
      Euclidean, or 1 - cosine).
    num_splits: int32 scalar, how many times an empty cluster was re-seeded over all
      iterations.
  """
  centroids: jax.Array
  assignments: jax.Array
  inertia: jax.Array
  num_splits: jax.Array


def _check(metric: str) -> None:
  if metric not in METRICS:
    raise ValueError(f'unknown k-means metric {metric!r}; choose one of {METRICS}.')


def _normalize(x: jax.Array) -> jax.Array:
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-24))


def distances(x: jax.Array, centroids: jax.Array, *, metric: str = 'euclidean') -> jax.Array:
  """Distance of every point to every centroid: [N, K].

  Args:
    x: [N, D] points (unit rows for 'cosine').
    centroids: [K, D] (unit rows for 'cosine').
    metric: 'euclidean' (squared distance |x - c|^2, clipped at 0) or 'cosine' (1 - x.c).
  """
  _check(metric)
  dots = jnp.matmul(x, centroids.T, precision=_HIGHEST)
  if metric == 'cosine':
    return 1.0 - dots
  x2 = jnp.sum(x * x, axis=-1, keepdims=True)
  c2 = jnp.sum(centroids * centroids, axis=-1)
  return jnp.maximum(x2 - 2.0 * dots + c2[None, :], 0.0)


def assign(x: jax.Array, centroids: jax.Array, *,
           metric: str = 'euclidean') -> tuple[jax.Array, jax.Array]:
  """Nearest centroid of every point (ties go to the lower index).

  Returns:
    (assignments [N] int32, distance of each point to its centroid [N] float32).
  """
  d = distances(x, centroids, metric=metric)
  return jnp.argmin(d, axis=-1).astype(jnp.int32), jnp.min(d, axis=-1)


def init_random(rng: jax.Array, x: jax.Array, num_clusters: int) -> jax.Array:
  """`num_clusters` distinct rows of x [N, D], drawn uniformly (Faiss's initialisation)."""
  rows = jax.random.choice(rng, x.shape[0], (num_clusters,), replace=False)
  return x[rows]


def init_kmeans_plus_plus(rng: jax.Array, x: jax.Array, num_clusters: int, *,
                          metric: str = 'euclidean') -> jax.Array:
  """k-means++ seeding: each new centroid is a row drawn with probability proportional to
  its distance to the nearest centroid already chosen (squared distance for 'euclidean').

  Args:
    rng: key.
    x: [N, D] points (unit rows for 'cosine').
    num_clusters: K <= N.
    metric: see `distances`.

  Returns:
    [K, D] rows of x.
  """
  first_rng, rest_rng = jax.random.split(rng)
  first = x[jax.random.randint(first_rng, (), 0, x.shape[0])]
  centroids = jnp.zeros((num_clusters, x.shape[1]), x.dtype).at[0].set(first)
  nearest = distances(x, first[None], metric=metric)[:, 0]

  def body(i, carry):
    centroids, nearest = carry
    # log(0) = -inf: rows already chosen (or duplicates of them) are never drawn again while
    # any row at a positive distance is left.
    row = jax.random.categorical(jax.random.fold_in(rest_rng, i),
                                 jnp.log(jnp.maximum(nearest, 0.0)))
    new = x[row]
    nearest = jnp.minimum(nearest, distances(x, new[None], metric=metric)[:, 0])
    return centroids.at[i].set(new), nearest

  centroids, _ = jax.lax.fori_loop(1, num_clusters, body, (centroids, nearest))
  return centroids


def update_centroids(x: jax.Array, assignments: jax.Array, centroids: jax.Array, *,
                     metric: str = 'euclidean') -> tuple[jax.Array, jax.Array]:
  """Moves each centroid to the mean of its points; an empty cluster keeps its centroid.

  Args:
    x: [N, D] points.
    assignments: [N] int cluster of each point, in [0, K).
    centroids: [K, D] the previous centroids (kept for empty clusters).
    metric: 'cosine' re-normalises the means to unit length (spherical k-means).

  Returns:
    (new centroids [K, D], cluster sizes [K] int32).
  """
  num_clusters = centroids.shape[0]
  one_hot = jax.nn.one_hot(assignments, num_clusters, dtype=x.dtype)  # [N, K]
  sizes = jnp.sum(one_hot, axis=0)
  sums = jnp.matmul(one_hot.T, x, precision=_HIGHEST)
  means = sums / jnp.maximum(sizes, 1.0)[:, None]
  if metric == 'cosine':
    means = _normalize(means)
  new = jnp.where(sizes[:, None] > 0, means, centroids)
  return new, sizes.astype(jnp.int32)


def split_empty_clusters(rng: jax.Array, centroids: jax.Array, sizes: jax.Array, *,
                         metric: str = 'euclidean',
                         eps: float = SPLIT_EPS) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Re-seeds every empty cluster by splitting a non-empty one (Faiss's `split_clusters`).

  Empty clusters are handled in index order. For empty cluster i, cluster j is drawn with
  probability proportional to max(size_j - 1, 0); centroid i becomes c_j * (1 + eps * s) and
  centroid j becomes c_j * (1 - eps * s), with s = (+1, -1, +1, ...) over the coordinates;
  size_i <- floor(size_j / 2) and size_j <- size_j - size_i. Stops when no cluster is empty or
  none has two points left to split.

  Args:
    rng: key for the choice of the clusters to split.
    centroids: [K, D].
    sizes: [K] int points per cluster.
    metric: 'cosine' re-normalises the two perturbed centroids.
    eps: relative perturbation (Faiss: 1/1024).

  Returns:
    (centroids [K, D], sizes [K] int32 after the splits, number of splits int32 scalar).
  """
  sign = jnp.where(jnp.arange(centroids.shape[1]) % 2 == 0, 1.0, -1.0).astype(centroids.dtype)

  def cond(carry):
    _, sizes, _ = carry
    return jnp.any(sizes == 0) & jnp.any(sizes >= 2)

  def body(carry):
    centroids, sizes, count = carry
    empty = jnp.argmax(sizes == 0)
    weights = jnp.maximum(sizes - 1, 0).astype(jnp.float32)
    donor = jax.random.categorical(jax.random.fold_in(rng, count), jnp.log(weights))
    base = centroids[donor]
    new_empty, new_donor = base * (1.0 + eps * sign), base * (1.0 - eps * sign)
    if metric == 'cosine':
      new_empty, new_donor = _normalize(new_empty), _normalize(new_donor)
    centroids = centroids.at[empty].set(new_empty).at[donor].set(new_donor)
    half = sizes[donor] // 2
    sizes = sizes.at[empty].set(half).at[donor].add(-half)
    return centroids, sizes, count + 1

  return jax.lax.while_loop(
      cond, body, (centroids, sizes.astype(jnp.int32), jnp.zeros((), jnp.int32)))


def lloyd(rng: jax.Array, x: jax.Array, centroids: jax.Array, *, num_iters: int,
          metric: str = 'euclidean', split_eps: float = SPLIT_EPS) -> KMeansResult:
  """`num_iters` Lloyd iterations from given centroids, then a final assignment.

  Each iteration: assign, update the centroids, split empty clusters (see the module
  docstring). `rng` only drives the choice of the clusters to split.

  Args:
    rng: key.
    x: [N, D] float points (normalised here for 'cosine').
    centroids: [K, D] initial centroids (normalised here for 'cosine').
    num_iters: Lloyd iterations (>= 0; Faiss's default, used by DeepCluster and LA, is 20).
    metric: 'euclidean' or 'cosine'.
    split_eps: relative perturbation of split centroids.

  Returns:
    `KMeansResult`.
  """
  _check(metric)
  x = jnp.asarray(x, jnp.float32)
  centroids = jnp.asarray(centroids, jnp.float32)
  if metric == 'cosine':
    x, centroids = _normalize(x), _normalize(centroids)

  def body(i, carry):
    centroids, num_splits = carry
    assignments, _ = assign(x, centroids, metric=metric)
    centroids, sizes = update_centroids(x, assignments, centroids, metric=metric)
    centroids, _, splits = split_empty_clusters(jax.random.fold_in(rng, i), centroids, sizes,
                                                metric=metric, eps=split_eps)
    return centroids, num_splits + splits

  centroids, num_splits = jax.lax.fori_loop(0, num_iters, body,
                                            (centroids, jnp.zeros((), jnp.int32)))
  assignments, dist = assign(x, centroids, metric=metric)
  return KMeansResult(centroids=centroids, assignments=assignments, inertia=jnp.sum(dist),
                      num_splits=num_splits)


def kmeans(rng: jax.Array, x: jax.Array, *, num_clusters: int, num_iters: int,
           init: str = 'random', metric: str = 'euclidean',
           split_eps: float = SPLIT_EPS) -> KMeansResult:
  """k-means of the rows of x.

  Args:
    rng: key; the same key and x give the same result.
    x: [N, D] float points, N >= num_clusters.
    num_clusters: K.
    num_iters: Lloyd iterations (Faiss's default, used by DeepCluster and LA: 20).
    init: 'random' (K distinct rows, Faiss's) or 'kmeans++'.
    metric: 'euclidean' (squared distance) or 'cosine' (spherical k-means).
    split_eps: relative perturbation of the centroids of a split cluster (Faiss: 1/1024).

  Returns:
    `KMeansResult` (centroids [K, D], assignments [N] int32, inertia, num_splits).

  Raises:
    ValueError: unknown init or metric, or fewer points than clusters.
  """
  _check(metric)
  if init not in INITS:
    raise ValueError(f'unknown k-means init {init!r}; choose one of {INITS}.')
  if x.ndim != 2:
    raise ValueError(f'kmeans expects points [N, D], got shape {x.shape}.')
  if not 1 <= num_clusters <= x.shape[0]:
    raise ValueError(f'kmeans: num_clusters={num_clusters} must be in [1, N={x.shape[0]}] '
                     '(every initial centroid is a distinct point).')
  init_rng, split_rng = jax.random.split(rng)
  x = jnp.asarray(x, jnp.float32)
  if metric == 'cosine':
    x = _normalize(x)
  if init == 'random':
    centroids = init_random(init_rng, x, num_clusters)
  else:
    centroids = init_kmeans_plus_plus(init_rng, x, num_clusters, metric=metric)
  return lloyd(split_rng, x, centroids, num_iters=num_iters, metric=metric,
               split_eps=split_eps)
