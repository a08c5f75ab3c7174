"""Graph autoencoders, GAE and VGAE (Kipf & Welling, NIPS 2016 workshop), on one graph.

A held-out part of the graph's edges (`jssl.data.graph.link_split`, fixed by
`config.gae.split_seed`: 5 % validation, 10 % test, each with as many non-edges) is removed
from the graph the encoder sees; the model is trained to reconstruct the edges that remain
and scored on predicting the held-out ones.

Encoder: GCN layers (`jssl.models.gnn.GCNLayer`, the symmetric normalisation over the
training edges) of `hidden_dims` with ReLU, then one linear GCN layer to the embedding
width for the mean mu and, for the variational model (`gae.variational`), another for log
sigma. GAE's embedding is z = mu; VGAE samples z = mu + sigma * eps (eps ~ N(0, I), from the
step's key). Decoder: the inner product, p(edge i-j) = sigmoid(z_i . z_j).

Loss: `jssl.losses.link_reconstruction` of every training edge (one direction of each
undirected edge) against as many node pairs drawn uniformly on the device each step
(negative sampling: a drawn pair is a non-edge with probability 1 - density, and is not
checked), plus for VGAE the KL divergence of q(z | X, A) from N(0, I), summed over the
embedding dimensions, averaged over the nodes and divided by N — the authors' code's
scaling, which matches their reconstruction term averaged over the N^2 entries of A.

Evaluation (`evaluate`): `link_auc` and `link_ap` (ROC AUC and average precision of
z_i . z_j, with z = mu) on the test pairs, `link_val_auc` / `link_val_ap` on the validation
ones. The probes read mu of each node, from the training graph (transductive, as DGI).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jssl import losses
from jssl.config import ConfigError
from jssl.data.graph import link_split
from jssl.eval import evaluate as evaluation
from jssl.eval.link_prediction import link_scores
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo
from jssl.models import gnn


class GraphAutoencoderEncoder(nn.Module):
  """``(x [N, F], senders, receivers, edge_mask) -> (mu [N, D], log_sigma [N, D] or None)``.

  Attributes:
    hidden_dims: widths of the ReLU GCN layers before the output layer(s).
    embedding_dim: D.
    variational: also output log sigma (a second linear GCN layer on the same input).
  """
  hidden_dims: Sequence[int]
  embedding_dim: int
  variational: bool

  @nn.compact
  def __call__(self, x, senders, receivers, edge_mask):
    edges = gnn.gcn_norm(senders, receivers, x.shape[0], edge_mask)
    h = x
    for i, width in enumerate(self.hidden_dims):
      h = nn.relu(gnn.GCNLayer(width, name=f'layer_{i}')(h, *edges))
    mu = gnn.GCNLayer(self.embedding_dim, name='mu')(h, *edges)
    if not self.variational:
      return mu, None
    return mu, gnn.GCNLayer(self.embedding_dim, name='log_sigma')(h, *edges)


def pair_scores(z: jax.Array, pairs: jax.Array) -> jax.Array:
  """The inner-product decoder's logits z_i . z_j of node pairs [K, 2] -> [K]."""
  return jnp.sum(z[pairs[:, 0]] * z[pairs[:, 1]], axis=-1)


def kl_to_standard_normal(mu: jax.Array, log_sigma: jax.Array) -> jax.Array:
  """KL(N(mu, sigma^2) || N(0, I)) per node, summed over the dimensions: [N, D] -> [N]."""
  return 0.5 * jnp.sum(jnp.square(mu) + jnp.exp(2 * log_sigma) - 1 - 2 * log_sigma, axis=-1)


def _check(config: ml_collections.ConfigDict, info: TrainInfo) -> None:
  c = config.gae
  if info.dataset is None or getattr(info.dataset, 'modality', None) != 'graph':
    raise ConfigError(f'gae reconstructs the edges of one graph; config.dataset.name='
                      f'{config.dataset.name!r} is not a graph dataset. Use a graph: polblogs, '
                      'football, wordnet_nouns, toy (experiments/configs/gae.py).')
  dims = c.hidden_dims
  if (not isinstance(dims, (tuple, list)) or
      any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in dims)):
    raise ConfigError(f'config.gae.hidden_dims={dims!r} must be a tuple of positive ints '
                      "(possibly empty), e.g. --config.gae.hidden_dims='(32,)'.")
  if isinstance(c.embedding_dim, bool) or not isinstance(c.embedding_dim, int) or (
      c.embedding_dim < 1):
    raise ConfigError(f'config.gae.embedding_dim={c.embedding_dim!r} must be a positive int.')
  if not 0 < c.test_fraction < 1 or not 0 <= c.val_fraction < 1 or (
      c.val_fraction + c.test_fraction >= 1):
    raise ConfigError(f'config.gae.val_fraction={c.val_fraction} and test_fraction='
                      f'{c.test_fraction} must be fractions of the edges (test > 0) with a sum '
                      'below 1.')


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds GAE / VGAE from `config.gae` on the graph of `info.dataset`."""
  _check(config, info)
  c = config.gae
  graph = info.dataset.graph
  split = link_split(graph, val_fraction=c.val_fraction, test_fraction=c.test_fraction,
                     seed=c.split_seed)
  train_mask = np.asarray(split.train_edge_mask)
  upper = train_mask & (graph.senders < graph.receivers)
  train_pairs = np.stack([graph.senders[upper], graph.receivers[upper]], 1).astype(np.int32)
  num_nodes = graph.num_nodes
  encoder = GraphAutoencoderEncoder(hidden_dims=tuple(c.hidden_dims),
                                    embedding_dim=c.embedding_dim, variational=c.variational)

  def encode(params, constants):
    return encoder.apply({'params': params['encoder']}, constants['node_features'],
                         constants['senders'], constants['receivers'], jnp.asarray(train_mask))

  def init(rng, example):
    del example  # a graph run has no example images
    no_edges = jnp.zeros((0,), jnp.int32)
    variables = encoder.init(rng, jnp.zeros((1, info.dataset.feature_dim), jnp.float32),
                             no_edges, no_edges, jnp.zeros((0,), bool))
    return {'encoder': variables['params']}, {}, {}

  def prepare(rng, batch, constants):
    del batch  # the loss is over the whole training graph (one step = one epoch, as DGI)
    negatives = jax.random.randint(rng, (train_pairs.shape[0], 2), 0, num_nodes)
    return {**constants, 'negatives': negatives.astype(jnp.int32)}

  def loss(params, batch_stats, extra, inputs, step, rng):
    del step
    mu, log_sigma = encode(params, inputs)
    z = mu if log_sigma is None else mu + jnp.exp(log_sigma) * jax.random.normal(rng, mu.shape)
    pos = pair_scores(z, jnp.asarray(train_pairs))
    neg = pair_scores(z, inputs['negatives'])
    reconstruction = losses.link_reconstruction(pos, neg)
    metrics = {'reconstruction': reconstruction,
               'edge_accuracy': (jnp.sum(pos > 0) + jnp.sum(neg < 0)) / (pos.size + neg.size)}
    value = reconstruction
    if log_sigma is not None:
      kl = jnp.mean(kl_to_standard_normal(mu, log_sigma)) / num_nodes
      metrics['kl'] = kl
      value = value + kl
    return value, LossOutput(batch_stats=batch_stats, extra=extra, metrics=metrics,
                             features=None, embeddings=None)

  def represent(params, batch_stats, batch, constants):
    del batch_stats  # no BatchNorm
    return encode(params, constants)[0][batch['node']]

  jitted = {}

  def evaluate(context):
    if not jitted:
      jitted['mu'] = evaluation.replicated_jit(lambda p, k: encode(p, k)[0], context.mesh)
    mu = np.asarray(jitted['mu'](context.state.params, context.constants), np.float64)
    results = {}
    for prefix, pos, neg in (('link', split.test_pos, split.test_neg),
                             ('link_val', split.val_pos, split.val_neg)):
      if len(pos):
        scores = link_scores(mu, pos, neg)
        results.update({f'{prefix}_auc': scores['auc'], f'{prefix}_ap': scores['ap']})
    return results

  return Method(name='gae', views=(), features_dim=c.embedding_dim, init=init, loss=loss,
                encode=None, prepare=prepare, represent=represent, evaluate=evaluate,
                online_probe=False)
