"""DeepCluster: PCA-whitening against NumPy, the epoch hook (pseudo-labels = k-means of the
preprocessed features, classifier re-drawn and its optimizer state zeroed, the encoder's
untouched), the cluster-balanced cross-entropy on a hand-built case, config errors and a short
digits run."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jssl.config import ConfigError
from jssl.config import load_config
from jssl.methods import Batch
from jssl.methods import TrainInfo
from jssl.methods import deepcluster
from jssl.methods import kmeans as kmeans_lib
from jssl.train import optim
from tiny import loop_steps, tiny_config

BATCH, NUM_EXAMPLES, K = 8, 40, 5
INFO = TrainInfo(num_examples=NUM_EXAMPLES, num_classes=10, image_channels=1, num_steps=10)


def _config(**overrides):
  config = tiny_config('deepcluster', image_size=8)  # F = 8
  config.deepcluster.num_clusters = K
  config.deepcluster.pca_dim = 4
  config.deepcluster.kmeans_iters = 5
  config.deepcluster.recluster_every = 1
  for key, value in overrides.items():
    config.deepcluster[key] = value
  return config


_INIT = {}


def _setup(config):
  method = deepcluster.create(config, INFO)
  rng = jax.random.key(0)
  views = tuple(jax.random.uniform(k, (BATCH, 8, 8, 1)) for k in jax.random.split(rng, 2))
  # Every config here builds the same network: initialise (compile) it once.
  if config.deepcluster.head not in _INIT:
    _INIT[config.deepcluster.head] = jax.jit(method.init)(jax.random.key(1), views[0])
  params, batch_stats, extra = _INIT[config.deepcluster.head]
  batch = Batch(views=views, label=jnp.zeros(BATCH, jnp.int32),
                index=jnp.array([3, 0, 17, 39, 8, 22, 5, 30]))
  return method, params, batch_stats, extra, batch


def _features(seed=0):
  """[40, 8] features in five blobs along random directions, with unequal variances."""
  rng = np.random.default_rng(seed)
  centres = 4.0 * rng.normal(size=(K, 8))
  x = centres[np.arange(NUM_EXAMPLES) % K] + rng.normal(size=(NUM_EXAMPLES, 8)) * np.linspace(
      0.2, 2.0, 8)
  return jnp.asarray(x, jnp.float32)


def test_init_state_and_heads():
  method, params, _, extra, _ = _setup(_config())
  assert set(params) == {'encoder', 'classifier'}
  assert params['classifier']['kernel'].shape == (8, K)
  assert len(method.views) == 2
  assert method.epoch_start is not None
  np.testing.assert_array_equal(extra['labels'], np.zeros(NUM_EXAMPLES))
  np.testing.assert_array_equal(extra['cluster_sizes'], [NUM_EXAMPLES, 0, 0, 0, 0])
  mlp = deepcluster.create(_config(head='mlp'), INFO)
  params, _, _ = jax.eval_shape(mlp.init, jax.random.key(1), jnp.zeros((BATCH, 8, 8, 1)))
  assert set(params) == {'encoder', 'projector', 'classifier'}
  assert params['classifier']['kernel'].shape == (8, K)  # on the 8-d projection


def _numpy_whiten(x, dim):
  x = np.asarray(x, np.float64)
  x = x - x.mean(0)
  values, vectors = np.linalg.eigh(x.T @ x / len(x))
  order = np.argsort(values)[::-1][:dim]
  return x @ vectors[:, order] / np.sqrt(values[order])


def test_preprocessing_is_pca_whitening_then_l2_normalisation():
  x = _features()
  white = deepcluster.pca_whiten(x, dim=4, epsilon=0.0)
  # Whitened: unit-variance, uncorrelated components.
  np.testing.assert_allclose(np.cov(np.asarray(white, np.float64).T, bias=True), np.eye(4),
                             atol=1e-4)
  want = _numpy_whiten(x, 4)
  # Component signs are arbitrary: compare the sign-free Gram matrices.
  np.testing.assert_allclose(white @ white.T, want @ want.T, rtol=1e-3, atol=1e-3)
  pre = deepcluster.preprocess_features(x, pca_dim=4, epsilon=0.0)
  want_unit = want / np.linalg.norm(want, axis=1, keepdims=True)
  np.testing.assert_allclose(pre @ pre.T, want_unit @ want_unit.T, atol=1e-4)
  # pca_dim = 0: normalisation only; pca_dim > F is capped at F.
  np.testing.assert_allclose(deepcluster.preprocess_features(x, pca_dim=0, epsilon=0.0),
                             x / np.linalg.norm(x, axis=1, keepdims=True), rtol=1e-6)
  assert deepcluster.preprocess_features(x, pca_dim=100, epsilon=1e-5).shape == (40, 8)


def test_epoch_start_reclusters_redraws_classifier_and_resets_its_optimizer_state():
  config = _config(recluster_every=2)
  method, params, _, extra, _ = _setup(config)
  optimizer, _ = optim.create_optimizer(config, 10)
  # Non-zero moments and step counts everywhere, as after some training.
  opt_state = jax.tree_util.tree_map(lambda x: jnp.ones_like(x) * 3,
                                     optimizer.init(params))
  features, rng = _features(), jax.random.key(5)
  hook = jax.jit(method.epoch_start)
  new_params, new_opt_state, new_extra = hook(params, opt_state, extra, features,
                                              jnp.int32(4), rng)

  # Pseudo-labels: k-means of the PCA-whitened, normalised features with the hook's key.
  kmeans_rng, classifier_rng = jax.random.split(rng)
  x = jax.jit(functools.partial(deepcluster.preprocess_features, pca_dim=4, epsilon=1e-5))(
      features)
  want = jax.jit(functools.partial(kmeans_lib.kmeans, num_clusters=K, num_iters=5))(kmeans_rng, x)
  np.testing.assert_array_equal(new_extra['labels'], want.assignments)
  np.testing.assert_array_equal(new_extra['cluster_sizes'],
                                np.bincount(np.asarray(want.assignments), minlength=K))
  np.testing.assert_allclose(new_extra['kmeans_inertia'], want.inertia, rtol=1e-6)
  assert np.all(np.asarray(new_extra['cluster_sizes']) > 0)

  # Classifier re-drawn (N(0, 0.01^2) kernel, zero bias); the encoder untouched.
  kernel = new_params['classifier']['kernel']
  np.testing.assert_allclose(kernel, 0.01 * jax.random.normal(classifier_rng, (8, K)),
                             rtol=1e-6)
  np.testing.assert_array_equal(new_params['classifier']['bias'], 0.0)
  assert not np.allclose(kernel, params['classifier']['kernel'])
  for a, b in zip(jax.tree_util.tree_leaves(params['encoder']),
                  jax.tree_util.tree_leaves(new_params['encoder'])):
    np.testing.assert_array_equal(a, b)

  # Optimizer state: the classifier's moments zeroed, everything else (the encoder's
  # moments, the step counts) unchanged.
  old_leaves = jax.tree_util.tree_leaves_with_path(opt_state)
  new_leaves = jax.tree_util.tree_leaves(new_opt_state)
  zeroed, counts = 0, 0
  for (path, old), new in zip(old_leaves, new_leaves):
    keys = [getattr(p, 'key', getattr(p, 'name', None)) for p in path]
    if 'classifier' in keys:
      np.testing.assert_array_equal(new, 0.0)
      zeroed += 1
    else:
      np.testing.assert_array_equal(new, old)
      counts += 'count' in keys
  assert zeroed == 4  # Adam's mu and nu of the kernel and the bias
  assert counts == 2  # Adam's and the schedule's step counts, kept

  # recluster_every=2: the loop encodes the training split on even epochs only; at an odd
  # one the hook gets no features and leaves everything as it was.
  assert [method.epoch_features(e) for e in range(5)] == [True, False, True, False, True]
  same = hook(new_params, new_opt_state, new_extra, None, jnp.int32(5), rng)
  for a, b in zip(jax.tree_util.tree_leaves((new_params, new_opt_state, new_extra)),
                  jax.tree_util.tree_leaves(same)):
    np.testing.assert_array_equal(a, b)


def _numpy_weighted_ce(logits, labels, sizes):
  logits = np.asarray(logits, np.float64)
  nonempty = np.sum(sizes > 0)
  total = 0.0
  for b, y in enumerate(labels):
    ce = np.log(np.sum(np.exp(logits[b]))) - logits[b, y]
    total += NUM_EXAMPLES / (nonempty * sizes[y]) * ce
  return total / len(labels)


def test_loss_is_cluster_balanced_cross_entropy_of_both_views():
  config = _config()
  method, params, batch_stats, extra, batch = _setup(config)
  # Hand-built pseudo-labels: cluster sizes 20, 12, 5, 3 and one empty cluster.
  labels = np.repeat([0, 1, 2, 3], [20, 12, 5, 3])
  np.random.default_rng(0).shuffle(labels)
  sizes = np.array([20, 12, 5, 3, 0])
  extra = {**extra, 'labels': jnp.asarray(labels, jnp.int32),
           'cluster_sizes': jnp.asarray(sizes, jnp.int32)}
  value, out = jax.jit(method.loss)(params, batch_stats, extra, batch, jnp.int32(0),
                                    jax.random.key(0))
  logits1, logits2 = out.embeddings
  batch_labels = labels[np.asarray(batch.index)]
  want = 0.5 * (_numpy_weighted_ce(logits1, batch_labels, sizes) +
                _numpy_weighted_ce(logits2, batch_labels, sizes))
  np.testing.assert_allclose(value, want, rtol=1e-5)
  assert not np.allclose(logits1, logits2)  # two different views
  for key in extra:  # the loss never changes the pseudo-labels
    np.testing.assert_array_equal(out.extra[key], extra[key])
  np.testing.assert_allclose(out.metrics['nonempty_clusters'], 4)
  np.testing.assert_allclose(out.metrics['largest_cluster_fraction'], 0.5)
  # The weights average to 1 over the training set.
  weights = deepcluster.cluster_weights(jnp.asarray(labels), jnp.asarray(sizes))
  np.testing.assert_allclose(jnp.mean(weights), 1.0, rtol=1e-6)


def test_reset_optimizer_state_only_touches_the_key():
  state = (optax.ScaleByAdamState(count=jnp.int32(7),
                                  mu={'classifier': {'w': jnp.ones(2)}, 'encoder': jnp.ones(3)},
                                  nu={'classifier': {'w': jnp.ones(2)}, 'encoder': jnp.ones(3)}),)
  out = deepcluster.reset_optimizer_state(state)
  np.testing.assert_array_equal(out[0].mu['classifier']['w'], 0.0)
  np.testing.assert_array_equal(out[0].nu['classifier']['w'], 0.0)
  np.testing.assert_array_equal(out[0].mu['encoder'], 1.0)
  assert int(out[0].count) == 7


@pytest.mark.parametrize('field,value,match', [
    ('num_clusters', 1, r'config\.deepcluster\.num_clusters=1 must be at least 2'),
    ('pca_dim', -1, r'config\.deepcluster\.pca_dim=-1 must be >= 0'),
    ('kmeans_iters', 0, r'config\.deepcluster\.kmeans_iters=0 must be >= 1'),
    ('kmeans_init', 'pp', r"config\.deepcluster\.kmeans_init='pp' is unknown.*'kmeans\+\+'"),
    ('head', 'deep', r"config\.deepcluster\.head='deep' is unknown.*'linear', 'mlp'"),
    ('recluster_every', 0, r'config\.deepcluster\.recluster_every=0 must be >= 1'),
    ('classifier_init_std', 0.0, r'config\.deepcluster\.classifier_init_std=0\.0 must be'),
    ('whitening_epsilon', -1.0, r'config\.deepcluster\.whitening_epsilon=-1\.0 must be'),
])
def test_bad_config_names_the_field(field, value, match):
  with pytest.raises(ConfigError, match=match):
    deepcluster.create(_config(**{field: value}), INFO)


def test_three_steps_on_digits(tmp_path):
  config = load_config('experiments/configs/deepcluster.py')
  config.num_steps = 3
  config.batch_size = 16
  config.model.widths = (4, 8)
  records = loop_steps(config, str(tmp_path), 3)
  assert all(math.isfinite(r['loss']) for r in records)
  # The hook ran before step 0: 100 clusters of the 1,259 digits, none empty.
  assert all(r['nonempty_clusters'] == 100 for r in records)
  assert records[0]['kmeans_inertia'] > 0
