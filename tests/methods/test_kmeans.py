"""k-means in JAX: Lloyd iterations against a NumPy loop from the same initial centroids,
Faiss-style splitting of empty clusters, k-means++ seeding, sharded equals single device,
determinism."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jssl.methods import kmeans as km

# Shared compiled functions: tests that call them on arrays of the same shape compile once.
KMEANS = {init: jax.jit(functools.partial(km.kmeans, num_clusters=4, num_iters=8, init=init))
          for init in km.INITS}


def _blobs(seed=0, n_per=16, centres=((0., 0., 0.), (6., 0., 1.), (0., 7., -2.), (5., 5., 5.)),
           scale=1.0):
  rng = np.random.default_rng(seed)
  x = np.concatenate([np.asarray(c) + scale * rng.normal(size=(n_per, len(c))) for c in centres])
  return x.astype(np.float32)


def _numpy_lloyd(x, centroids, num_iters, metric):
  """Textbook Lloyd iterations in float64 (no empty clusters expected)."""
  x = np.asarray(x, np.float64)
  c = np.asarray(centroids, np.float64)
  if metric == 'cosine':
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    c = c / np.linalg.norm(c, axis=1, keepdims=True)

  def nearest(c):
    if metric == 'cosine':
      d = 1.0 - x @ c.T
    else:
      d = ((x[:, None, :] - c[None, :, :])**2).sum(-1)
    return d.argmin(1), d.min(1)

  for _ in range(num_iters):
    a, _ = nearest(c)
    for k in range(len(c)):
      members = x[a == k]
      assert len(members), 'the reference expects no empty cluster'
      c[k] = members.mean(0)
      if metric == 'cosine':
        c[k] /= np.linalg.norm(c[k])
  a, d = nearest(c)
  return c, a, d.sum()


@pytest.mark.parametrize('metric', km.METRICS)
def test_lloyd_matches_numpy_from_the_same_initial_centroids(metric):
  x = _blobs()
  rng = jax.random.key(0)
  init = km.init_random(rng, jnp.asarray(x), 4)
  # Rows of x, distinct.
  rows = [int(np.argmin(np.abs(x - np.asarray(c)).sum(1))) for c in init]
  assert len(set(rows)) == 4
  np.testing.assert_array_equal(np.asarray(init), x[rows])
  got = jax.jit(lambda r, x, c: km.lloyd(r, x, c, num_iters=6, metric=metric))(
      rng, jnp.asarray(x), init)
  want_c, want_a, want_inertia = _numpy_lloyd(x, init, 6, metric)
  np.testing.assert_array_equal(got.assignments, want_a)
  np.testing.assert_allclose(got.centroids, want_c, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got.inertia, want_inertia, rtol=1e-4)
  assert int(got.num_splits) == 0
  assert got.assignments.dtype == jnp.int32


def test_kmeans_recovers_separated_blobs_and_is_deterministic():
  x = jnp.asarray(_blobs(scale=0.3))
  run = KMEANS['kmeans++']
  a = run(jax.random.key(3), x)
  b = run(jax.random.key(3), x)
  for u, v in zip(a, b):
    np.testing.assert_array_equal(u, v)
  labels = np.asarray(a.assignments).reshape(4, 16)
  # One cluster per blob: every blob is uniform and the four labels are distinct.
  assert all(len(set(row)) == 1 for row in labels)
  assert len(set(labels[:, 0])) == 4
  c = run(jax.random.key(4), x)
  assert not np.array_equal(np.asarray(a.centroids), np.asarray(c.centroids))  # key matters


def test_kmeans_plus_plus_samples_proportionally_to_distance():
  # Three tight, far-apart blobs: after the first pick, D^2 sampling lands in another blob
  # almost surely (uniform sampling would repeat a blob with probability ~1/3 per pick).
  x = jnp.asarray(_blobs(centres=((0., 0.), (50., 0.), (0., 50.)), scale=0.01, n_per=20))
  seed_fn = jax.jit(lambda r: km.init_kmeans_plus_plus(r, x, 3))
  for seed in range(10):
    c = np.asarray(seed_fn(jax.random.key(seed)))
    blobs = sorted(int(np.argmin([np.linalg.norm(ci - m) for m in ((0, 0), (50, 0), (0, 50))]))
                   for ci in c)
    assert blobs == [0, 1, 2], (seed, c)


def test_empty_cluster_is_split_as_faiss_does():
  # Cluster 0 has one point, cluster 1 ten points, and centroid 2 is too far to win any
  # point. After the update cluster 2 is empty and the only cluster with two or more points
  # (the only one that may be split) is cluster 1.
  rng = np.random.default_rng(0)
  blob = np.array([5.0, 3.0]) + rng.normal(size=(10, 2)).astype(np.float32)
  x = jnp.asarray(np.concatenate([[[-20.0, -20.0]], blob]).astype(np.float32))
  init = jnp.asarray([[-20.0, -20.0], [5.0, 3.0], [1000.0, 1000.0]])
  step = jax.jit(lambda r, x, c: km.lloyd(r, x, c, num_iters=1))
  one = step(jax.random.key(0), x, init)
  assert int(one.num_splits) == 1
  mean = np.asarray(blob, np.float64).mean(0)
  eps = km.SPLIT_EPS
  np.testing.assert_allclose(one.centroids[2], mean * [1 + eps, 1 - eps], rtol=1e-6)
  np.testing.assert_allclose(one.centroids[1], mean * [1 - eps, 1 + eps], rtol=1e-6)
  # The next assignment splits cluster 1's points between the two copies: none is empty.
  sizes = np.bincount(np.asarray(one.assignments), minlength=3)
  assert sizes[0] == 1 and sizes[1] > 0 and sizes[2] > 0 and sizes.sum() == 11
  more = one
  for i in range(4):
    more = step(jax.random.key(i), x, more.centroids)
    assert int(more.num_splits) == 0
  assert np.all(np.bincount(np.asarray(more.assignments), minlength=3) > 0)


def test_split_draws_donors_by_size_minus_one_and_fills_every_empty_cluster():
  centroids = jnp.arange(12.0).reshape(6, 2) + 1.0
  sizes = jnp.array([0, 5, 0, 1, 0, 30])
  split = jax.jit(km.split_empty_clusters)
  donors = []
  for seed in range(40):
    c, s, n = split(jax.random.key(seed), centroids, sizes)
    assert int(n) == 3
    s = np.asarray(s)
    assert np.all(s > 0) and s.sum() == 36
    assert s[3] == 1  # a single point is never split
    # Each re-seeded centroid is a perturbed copy of cluster 1's or cluster 5's centroid.
    for i in (0, 2, 4):
      ratio = np.asarray(c[i]) / np.asarray(centroids)[[1, 5]]
      donors.append(int(np.argmin(np.abs(ratio - [1 + km.SPLIT_EPS, 1 - km.SPLIT_EPS]).sum(1))))
  # P(donor = cluster 5) is 29/33 for the first split: most copies come from the large one.
  assert 0.6 < np.mean(donors) < 1.0


def test_kmeans_sharded_along_n_equals_single_device():
  x = _blobs(seed=1)  # N = 64, divisible by 8
  mesh = Mesh(np.asarray(jax.devices()), ('data',))
  sharded_x = jax.device_put(x, NamedSharding(mesh, P('data')))
  for init, run in KMEANS.items():
    single = run(jax.random.key(1), jnp.asarray(x))
    sharded = run(jax.random.key(1), sharded_x)
    assert len(sharded.assignments.sharding.device_set) == 8
    np.testing.assert_array_equal(sharded.assignments, single.assignments, err_msg=init)
    np.testing.assert_allclose(sharded.centroids, single.centroids, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sharded.inertia, single.inertia, rtol=1e-5)


def test_bad_arguments():
  x = jnp.zeros((4, 2))
  with pytest.raises(ValueError, match=r'num_clusters=5 must be in \[1, N=4\]'):
    km.kmeans(jax.random.key(0), x, num_clusters=5, num_iters=1)
  with pytest.raises(ValueError, match="unknown k-means init 'pp'"):
    km.kmeans(jax.random.key(0), x, num_clusters=2, num_iters=1, init='pp')
  with pytest.raises(ValueError, match="unknown k-means metric 'l1'"):
    km.kmeans(jax.random.key(0), x, num_clusters=2, num_iters=1, metric='l1')
