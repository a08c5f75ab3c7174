"""DeepCluster (Caron, Bojanowski, Joulin & Douze 2018): k-means pseudo-labels as targets.

"Deep Clustering for Unsupervised Learning of Visual Features" alternates two steps. At the
start of every epoch the frozen network's features of the whole training set (no
augmentation) are PCA-reduced and whitened, L2-normalised and clustered with k-means; the
cluster of each image is its pseudo-label. A freshly initialised classifier on top of the
network is then trained, together with the network, to predict the pseudo-labels of augmented
images with a cross-entropy; images are sampled uniformly over the pseudo-classes so that a
few huge clusters cannot dominate.

Here the clustering runs in `Method.epoch_start` (the train loop calls it before the first
step of every epoch with the encoder's evaluation-mode features of every training example),
entirely in JAX (`jssl.methods.kmeans`):

1. PCA-whitening to `pca_dim` dimensions (the paper: 256): centre the features, take the top
   `pca_dim` eigenvectors of their covariance (`jnp.linalg.eigh`) and divide each component by
   sqrt(eigenvalue + whitening_epsilon * largest eigenvalue), as Faiss's PCAMatrix with
   eigen_power -0.5 does (the epsilon only guards against zero-variance directions, which dead
   ReLU units give). `pca_dim` is capped at the feature size F; 0 skips this step.
2. L2-normalisation of every row.
3. k-means with `num_clusters` clusters (paper: 10,000 on ImageNet), `kmeans_iters` Lloyd
   iterations (Faiss's 20), random-row initialisation and Faiss's splitting of empty
   clusters. `num_clusters` is capped at the number of training examples (tiny smoke-test
   splits); the classifier keeps `num_clusters` outputs, the extra ones are never targets.
4. The classifier is re-drawn, kernel ~ N(0, classifier_init_std^2) and bias 0 (the paper's
   top layer: N(0, 0.01^2), zero bias), and its optimizer state is reset: every leaf of
   `opt_state` whose key path contains the key 'classifier' is set to zero. Optax states that
   mirror the params tree (SGD/LARS momentum `trace`, Adam's `mu` and `nu`) hold the
   classifier's moments under that key; scalars such as Adam's step `count` are not under it
   and are kept. The paper builds a new SGD optimizer for its top layer every epoch (empty
   momentum), which this reproduces for SGD/LARS. With Adam the bias correction still uses
   the global step count, so the classifier's first step after a reset is about
   (1 - b1) / sqrt(1 - b2) ~ 3.2 times Adam's usual step, settling within ~10 steps.
   The encoder's (and projector's) parameters and optimizer state are untouched.

With `recluster_every` > 1 these four steps run only at epochs that are multiples of it, and
the classifier keeps training in between (the digits config: an epoch there is 19 steps,
against ~5,000 on ImageNet).

Choices where the paper leaves room:
- Head (`head`): 'linear' puts the classifier directly on the encoder's representation, the
  same features that are clustered (the paper clusters the output of AlexNet's last hidden
  fully connected layer and puts its linear top layer right on it). 'mlp' inserts `config.model`'s projection MLP and a ReLU
  between them (trained, never reset); clustering still uses the encoder's representation,
  the only features the loop provides.
- Uniform sampling over pseudo-classes is approximated by weighting each example's
  cross-entropy with w_i = N / (K' * size(c_i)), where K' is the number of non-empty clusters:
  a reweighting, not a sampler. Under uniform sampling of examples (the data iterator) the
  weighted loss has the same expectation as the paper's loss under its sampler (each cluster
  drawn with probability 1/K', then an image of it uniformly); the weights average to 1 over
  the training set. `balance_clusters=False` gives the plain mean.
- Two augmented views per example (the paper uses one), each classified against the same
  pseudo-label and the two cross-entropies averaged; `embeddings` are the two views' logits.

State (`extra`): 'labels' [N] int32 pseudo-label of every training example (all 0 until the
first `epoch_start`, which runs before step 0), 'cluster_sizes' [num_clusters] int32 (N, 0, 0,
... initially) and 'kmeans_inertia' (float32, the last clustering's sum of squared distances,
logged). Everything a resumed run needs is there: the labels are not recomputed on restore.

Logged: 'pseudo_label_top1' (the classifier's accuracy on view 1), 'kmeans_inertia',
'nonempty_clusters', 'largest_cluster_fraction' (a clustering collapsing into a few clusters
shows here first).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from jssl import losses
from jssl import models
from jssl.config import ConfigError
from jssl.methods import common
from jssl.methods import kmeans as kmeans_lib
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo

PyTree = Any

HEADS = ('linear', 'mlp')
CLASSIFIER = 'classifier'  # key of the classifier's sub-tree in params and opt_state


class DeepClusterNet(nn.Module):
  """Encoder [-> projection MLP -> ReLU] -> linear classifier over the pseudo-classes.

  `__call__` returns (representation h [B, F], logits [B, num_clusters]).
  """
  encoder: nn.Module
  projector: nn.Module | None
  num_clusters: int
  classifier_init_std: float = 0.01

  def setup(self):
    self.classifier = nn.Dense(
        self.num_clusters, kernel_init=nn.initializers.normal(self.classifier_init_std),
        bias_init=nn.initializers.zeros)

  def __call__(self, images, *, train: bool):
    h = self.encoder(images, train=train)
    x = h if self.projector is None else nn.relu(self.projector(h, train=train))
    return h, self.classifier(x)

  def encode(self, images):
    return self.encoder(images, train=False)


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks `config.deepcluster`; raises ConfigError naming the field and a fix."""
  c = config.deepcluster
  if c.num_clusters < 2:
    raise ConfigError(f'config.deepcluster.num_clusters={c.num_clusters} must be at least 2 '
                      '(paper: 10000 on ImageNet; e.g. 100 on digits).')
  if c.pca_dim < 0:
    raise ConfigError(f'config.deepcluster.pca_dim={c.pca_dim} must be >= 0 (0 turns the '
                      'PCA-whitening off; paper: 256).')
  if c.whitening_epsilon < 0:
    raise ConfigError(f'config.deepcluster.whitening_epsilon={c.whitening_epsilon} must be '
                      '>= 0, e.g. 1e-5.')
  if c.kmeans_iters < 1:
    raise ConfigError(f'config.deepcluster.kmeans_iters={c.kmeans_iters} must be >= 1 '
                      "(Faiss's default, used by the paper: 20).")
  if c.kmeans_init not in kmeans_lib.INITS:
    raise ConfigError(f'config.deepcluster.kmeans_init={c.kmeans_init!r} is unknown; choose '
                      f'one of {kmeans_lib.INITS}.')
  if c.head not in HEADS:
    raise ConfigError(f'config.deepcluster.head={c.head!r} is unknown; choose one of {HEADS}.')
  if c.recluster_every < 1:
    raise ConfigError(f'config.deepcluster.recluster_every={c.recluster_every} must be >= 1 '
                      '(epochs between clusterings; the paper: 1).')
  if c.classifier_init_std <= 0:
    raise ConfigError(f'config.deepcluster.classifier_init_std={c.classifier_init_std} must be '
                      'positive (paper: 0.01).')


def pca_whiten(features: jax.Array, *, dim: int, epsilon: float) -> jax.Array:
  """Projects centred features on their top `dim` principal axes, each scaled to unit variance.

  Args:
    features: [N, F].
    dim: components kept, 1 <= dim <= F.
    epsilon: each component is divided by sqrt(eigenvalue + epsilon * largest eigenvalue).

  Returns:
    [N, dim] float32 whitened features (the sign of each component is arbitrary).
  """
  x = jnp.asarray(features, jnp.float32)
  x = x - jnp.mean(x, axis=0, keepdims=True)
  cov = jnp.matmul(x.T, x, precision=jax.lax.Precision.HIGHEST) / x.shape[0]
  eigenvalues, eigenvectors = jnp.linalg.eigh(cov)  # ascending
  eigenvalues = jnp.maximum(eigenvalues[::-1][:dim], 0.0)
  eigenvectors = eigenvectors[:, ::-1][:, :dim]
  floor = epsilon * eigenvalues[0] + 1e-12  # the 1e-12 only keeps constant features finite
  projected = jnp.matmul(x, eigenvectors, precision=jax.lax.Precision.HIGHEST)
  return projected * jax.lax.rsqrt(eigenvalues + floor)


def preprocess_features(features: jax.Array, *, pca_dim: int, epsilon: float) -> jax.Array:
  """DeepCluster's features for k-means: PCA-whitening to min(pca_dim, F) (0: none), then
  L2-normalisation. [N, F] -> [N, min(pca_dim, F) or F]."""
  x = jnp.asarray(features, jnp.float32)
  if pca_dim > 0:
    x = pca_whiten(x, dim=min(pca_dim, x.shape[1]), epsilon=epsilon)
  return losses.l2_normalize(x)


def reset_optimizer_state(opt_state: PyTree, key: str = CLASSIFIER) -> PyTree:
  """Zeros every leaf of `opt_state` whose key path contains the dict key `key`.

  Optax states that mirror the params tree (momentum traces, Adam's mu and nu) keep a
  sub-tree's statistics under the same key as the params; other leaves (step counts) are
  returned unchanged.
  """

  def reset(path, leaf):
    if any(isinstance(entry, jax.tree_util.DictKey) and entry.key == key for entry in path):
      return jnp.zeros_like(leaf)
    return leaf

  return jax.tree_util.tree_map_with_path(reset, opt_state)


def cluster_weights(labels: jax.Array, cluster_sizes: jax.Array) -> jax.Array:
  """Per-example weights N / (K' * size(label)) that make the loss's expectation that of
  sampling uniformly over the K' non-empty pseudo-classes.

  Args:
    labels: [B] int pseudo-labels.
    cluster_sizes: [K] int, the size of every cluster over the N training examples.

  Returns:
    [B] float32 weights (their mean over the whole training set is 1).
  """
  sizes = cluster_sizes.astype(jnp.float32)
  total = jnp.sum(sizes)
  nonempty = jnp.sum(sizes > 0)
  return total / (nonempty * jnp.maximum(sizes[labels], 1.0))


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds DeepCluster from `config.model`, `config.augment` and `config.deepcluster`."""
  validate(config)
  c = config.deepcluster
  projector = common.projection_head(config) if c.head == 'mlp' else None
  model = DeepClusterNet(encoder=models.encoder_from_config(config.model), projector=projector,
                         num_clusters=c.num_clusters,
                         classifier_init_std=c.classifier_init_std)
  views = common.views_for(config, 2, 'DeepCluster')
  num_examples = info.num_examples
  num_used = min(c.num_clusters, num_examples)  # k-means clusters; tiny splits cap it

  def init(rng, images):
    params, batch_stats = common.init_variables(model, rng, images)
    extra = {
        'labels': jnp.zeros((num_examples,), jnp.int32),
        'cluster_sizes': jnp.zeros((c.num_clusters,), jnp.int32).at[0].set(num_examples),
        'kmeans_inertia': jnp.zeros((), jnp.float32),
    }
    return params, batch_stats, extra

  def recluster(params, opt_state, extra, features, rng):
    kmeans_rng, classifier_rng = jax.random.split(rng)
    x = preprocess_features(features, pca_dim=c.pca_dim, epsilon=c.whitening_epsilon)
    result = kmeans_lib.kmeans(kmeans_rng, x, num_clusters=num_used, num_iters=c.kmeans_iters,
                               init=c.kmeans_init)
    sizes = jnp.zeros((c.num_clusters,), jnp.int32).at[result.assignments].add(1)
    kernel = params[CLASSIFIER]['kernel']
    classifier = {
        'kernel': c.classifier_init_std * jax.random.normal(classifier_rng, kernel.shape,
                                                            kernel.dtype),
        'bias': jnp.zeros_like(params[CLASSIFIER]['bias']),
    }
    params = {**params, CLASSIFIER: classifier}
    extra = {'labels': result.assignments, 'cluster_sizes': sizes,
             'kmeans_inertia': result.inertia.astype(jnp.float32)}
    return params, reset_optimizer_state(opt_state), extra

  def epoch_features(epoch):
    return epoch % c.recluster_every == 0

  def epoch_start(params, opt_state, extra, features, epoch, rng):
    """Clusters `features` [N, F] (given every `recluster_every` epochs, None between):
    new pseudo-labels, a re-drawn classifier and its optimizer state zeroed. `rng` is split
    into (k-means key, classifier key)."""
    del epoch  # `epoch_features` decides, outside the compiled hook, when to recluster
    if features is None:
      return params, opt_state, extra
    return recluster(params, opt_state, extra, features, rng)

  def loss(params, batch_stats, extra, batch, step, rng):
    del step, rng
    (h, logits), batch_stats = common.apply_train(model, params, batch_stats,
                                                  common.interleave(batch.views))
    logits1, logits2 = common.deinterleave(logits, 2)
    labels = jax.lax.stop_gradient(extra['labels'][batch.index])
    if c.balance_clusters:
      weights = cluster_weights(labels, extra['cluster_sizes'])
    else:
      weights = jnp.ones(labels.shape, jnp.float32)
    per_view = [jnp.mean(weights * optax.softmax_cross_entropy_with_integer_labels(z, labels))
                for z in (logits1, logits2)]
    value = (per_view[0] + per_view[1]) / 2
    sizes = extra['cluster_sizes']
    metrics = {
        'pseudo_label_top1': jnp.mean(jnp.argmax(logits1, -1) == labels),
        'kmeans_inertia': extra['kmeans_inertia'],
        'nonempty_clusters': jnp.sum(sizes > 0).astype(jnp.float32),
        'largest_cluster_fraction': jnp.max(sizes).astype(jnp.float32) / num_examples,
    }
    return value, LossOutput(batch_stats=batch_stats, extra=extra, metrics=metrics,
                             features=common.deinterleave(h, 2)[0],
                             embeddings=(logits1, logits2))

  def encode(params, batch_stats, images):
    return model.apply({'params': params, 'batch_stats': batch_stats}, images,
                       method=DeepClusterNet.encode)

  return Method(name='deepcluster', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=encode, epoch_start=epoch_start,
                epoch_features=epoch_features)
