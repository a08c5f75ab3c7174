"""Deep Graph Infomax (Velickovic et al., ICLR 2019) on one graph, transductive.

Each step the GCN encoder runs on the whole graph and on its corruption: the same edges with
the node-feature rows shuffled by one random permutation drawn from the step's key (the
paper's corruption function). The readout is the sigmoid of the mean real embedding over
every node, s = sigmoid(mean_i h_i); a bilinear discriminator scores D(h, s) = h W s + b, and
the loss (`jssl.losses.dgi`) is the binary cross-entropy of real (h_i, s) pairs against
corrupted (h~_j, s) pairs.

The loss is the paper's, exactly: it averages over all N real and all N corrupted nodes of
the graph, whichever nodes the loop's batch holds. The encoder sees the whole graph anyway
(the graph's arrays are the dataset's replicated device constants), so scoring every node
costs one [N, H] x [H] product more than scoring a batch's. The loop's batch of node ids
(N rounded down to a multiple of 8 in experiments/configs/dgi.py) only paces the loop: one
step per pass over the nodes, so an epoch of the loop is an epoch of the paper. The GCN runs
whole on every device (the graph is replicated), so more devices do not make a step faster.

`represent` is the frozen encoder of the real graph, gathered at the batch's node ids: the
probes fit logistic regression on the train-mask nodes (the paper's protocol).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections

from jssl import losses
from jssl import models
from jssl.config import ConfigError
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo
from jssl.models import gnn


def readout(embeddings: jax.Array) -> jax.Array:
  """The graph summary s = sigmoid(mean over nodes of the embeddings).

  Args:
    embeddings: [N, H] node embeddings of the real graph.

  Returns:
    [H] summary in (0, 1).
  """
  return jax.nn.sigmoid(jnp.mean(embeddings, axis=0))


def discriminate(discriminator: dict, embeddings: jax.Array, summary: jax.Array) -> jax.Array:
  """Bilinear scores D(h_i, s) = h_i W s + b (logits of 'real pair').

  Args:
    discriminator: {'kernel': [H, H] W, 'bias': [] b}.
    embeddings: [N, H] node embeddings.
    summary: [H] graph summary.

  Returns:
    [N] float32 logits.
  """
  return embeddings @ (discriminator['kernel'] @ summary) + discriminator['bias']


def init_discriminator(rng: jax.Array, width: int) -> dict:
  """W uniform in +-sqrt(6 / (H^2 + H)), b = 0.

  The bound is Glorot's for the fans (H^2, H) that the DGI reference's bilinear weight
  [1, H, H] has; it keeps the initial scores O(1) (Glorot's [H, H] bound would give
  scores of standard deviation ~sqrt(H) / 2 on 0.5-valued summaries).
  """
  bound = math.sqrt(6.0 / (width * width + width))
  return {'kernel': jax.random.uniform(rng, (width, width), jnp.float32, -bound, bound),
          'bias': jnp.zeros((), jnp.float32)}


def corrupt(rng: jax.Array, node_features: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The paper's corruption: the rows of the feature matrix in a random order.

  Args:
    rng: the key of this corruption (one per step).
    node_features: [N, F].

  Returns:
    (corrupted [N, F] with row i = node_features[permutation[i]], permutation [N] int32).
  """
  permutation = jax.random.permutation(rng, node_features.shape[0]).astype(jnp.int32)
  return node_features[permutation], permutation


def _check(config: ml_collections.ConfigDict, info: TrainInfo) -> tuple[int, ...]:
  c = config.dgi
  dataset = info.dataset
  if dataset is None or getattr(dataset, 'modality', None) != 'graph':
    name = config.dataset.name
    raise ConfigError(
        f'dgi learns node embeddings of one graph; config.dataset.name={name!r} is not a graph '
        'dataset. Use a graph: wordnet_nouns, polblogs, football, polbooks, toy or '
        'planetoid:NAME (experiments/configs/dgi.py has variants for them).')
  hidden_dims = c.hidden_dims
  if (not isinstance(hidden_dims, (tuple, list)) or not hidden_dims or
      any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden_dims)):
    raise ConfigError(f'config.dgi.hidden_dims={hidden_dims!r} must be a non-empty tuple of '
                      'positive ints, the width of each GCN layer, e.g. '
                      "--config.dgi.hidden_dims='(512,)'.")
  if c.activation not in gnn.ACTIVATIONS:
    raise ConfigError(f'config.dgi.activation={c.activation!r} is unknown; choose one of '
                      f'{list(gnn.ACTIVATIONS)} (the paper uses prelu).')
  if config.model.dtype not in models.DTYPES:
    raise ConfigError(f'config.model.dtype={config.model.dtype!r} is unknown; choose one of '
                      f'{sorted(models.DTYPES)}.')
  return tuple(int(h) for h in hidden_dims)


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds DGI from `config.dgi` (hidden_dims, activation) and `config.model.dtype`."""
  hidden_dims = _check(config, info)
  encoder = gnn.GCN(hidden_dims=hidden_dims, activation=config.dgi.activation,
                    dtype=models.DTYPES[config.model.dtype])
  width = encoder.features_dim
  feature_dim = int(info.dataset.feature_dim)

  def init(rng, example):
    del example  # a graph run has no example images; the GCN's shapes need only F.
    encoder_rng, discriminator_rng = jax.random.split(rng)
    dummy = jnp.zeros((1, feature_dim), jnp.float32)
    no_edges = jnp.zeros((0,), jnp.int32)
    variables = encoder.init(encoder_rng, dummy, no_edges, no_edges)
    params = {'encoder': variables['params'],
              'discriminator': init_discriminator(discriminator_rng, width)}
    return params, {}, {}

  def embed(encoder_params, node_features, senders, receivers):
    return encoder.apply({'params': encoder_params}, node_features, senders, receivers)

  def prepare(rng, batch, constants):
    del batch  # the loss is over every node of the graph (module docstring)
    corrupted, permutation = corrupt(rng, constants['node_features'])
    return {'node_features': constants['node_features'], 'corrupted_features': corrupted,
            'permutation': permutation, 'senders': constants['senders'],
            'receivers': constants['receivers']}

  def loss(params, batch_stats, extra, inputs, step, rng):
    del step, rng  # deterministic given the corruption drawn in `prepare`
    real = embed(params['encoder'], inputs['node_features'], inputs['senders'],
                 inputs['receivers'])
    fake = embed(params['encoder'], inputs['corrupted_features'], inputs['senders'],
                 inputs['receivers'])
    summary = readout(real)
    pos = discriminate(params['discriminator'], real, summary)
    neg = discriminate(params['discriminator'], fake, summary)
    value = losses.dgi(pos, neg)
    accuracy = (jnp.sum(pos > 0) + jnp.sum(neg < 0)) / (pos.size + neg.size)
    metrics = {'discriminator_accuracy': accuracy.astype(jnp.float32),
               'summary_mean': jnp.mean(summary)}
    return value, LossOutput(batch_stats=batch_stats, extra=extra, metrics=metrics,
                             features=None, embeddings=None)

  def represent(params, batch_stats, batch, constants):
    del batch_stats  # the GCN has no BatchNorm
    h = embed(params['encoder'], constants['node_features'], constants['senders'],
              constants['receivers'])
    return h[batch['node']]

  return Method(name='dgi', views=(), features_dim=width, init=init, loss=loss, encode=None,
                prepare=prepare, represent=represent, online_probe=False)
