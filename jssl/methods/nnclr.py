"""NNCLR (Dwibedi, Aytar, Tompson, Sermanet & Zisserman 2021): nearest-neighbour contrast.

"With a Little Help from My Friends": SimCLR's positive (the other view of the same image) is
replaced by the nearest neighbour of a view's projection in a support set of projections of
earlier batches, so positives cover more variation than augmentation alone gives.

One online network (encoder, projector, predictor) embeds both views: projections z1, z2 and
predictions p1 = g(z1), p2 = g(z2). The support set Q is a FIFO queue of unit projections. The
loss is the paper's Algorithm 1,

    loss = ½ batch_info_nce(NN(z1, Q), p2) + ½ batch_info_nce(NN(z2, Q), p1),

where row i of `batch_info_nce(a, b)` classifies a_i among all predictions b of the global batch
(its own example's b_i is the positive; cosine similarities over a temperature, paper 0.1).

Choices, following the paper's pseudo-code where it is explicit:
- The predictor sits on the side that is not replaced by a neighbour: a neighbour taken from
  view 1 is the positive of view 2's prediction and vice versa (Algorithm 1: L(NN1, p2)).
- The neighbour is a queue row, so it carries no gradient (`stop_gradient` written out):
  encoder and projector are trained only through the predictions p = g(z); the projections
  z matter to the loss by choosing the neighbours and, once enqueued, as later neighbours.
- Nearest neighbour = highest cosine similarity (top-1), searched in the support set as it was
  BEFORE this batch is enqueued; then the unit projections z1 of view 1 of the whole global
  batch are enqueued (Algorithm 1: `fifo_update(Q, z1)`); view 2's are not.
- The support set starts as random unit vectors (as MoCo's queue), so the first
  `support_size / batch_size` steps look up neighbours partly among noise.
- Each view is a separate network call, so BatchNorm normalises over one view of the global
  batch at a time, as in the paper's `f(x1), f(x2)`.
- Support size: the paper's 98,304 is 7.7% of ImageNet; digits has 1,259 training images, so its
  config uses 1,024 (a multiple of the batch, validated here).

State (`extra`): 'queue' [support_size, projection_dim] of unit projections (the support set)
and 'queue_pointer' (its oldest row).

Logged: 'nn_cosine', the mean cosine between z1 and its neighbour (how close the support set's
best match is; labels are not read), and 'positive_cosine', between NN(z1) and p2.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from jssl import losses
from jssl import models
from jssl.config import ConfigError
from jssl.methods import common
from jssl.methods import memory
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks `config.nnclr` against the global batch; raises ConfigError."""
  c = config.nnclr
  batch = config.batch_size
  memory.validate_fifo_size('nnclr.support_size', c.support_size, batch, what='projections')
  if c.temperature <= 0:
    raise ConfigError(f'config.nnclr.temperature={c.temperature} must be positive (paper: 0.1).')
  if c.predictor_hidden_dim <= 0:
    raise ConfigError(f'config.nnclr.predictor_hidden_dim={c.predictor_hidden_dim} must be '
                      'positive: NNCLR applies a predictor to the projections (paper: 4096).')


def nearest_neighbour(z: jax.Array, support: jax.Array) -> jax.Array:
  """The most cosine-similar row of `support` for each row of `z`, with no gradient.

  Args:
    z: [B, D] projections.
    support: [S, D] unit vectors.

  Returns:
    [B, D] rows of `support`.
  """
  index = memory.nearest_neighbours(z.astype(jnp.float32), support, 1)[:, 0]
  return jax.lax.stop_gradient(support[index])


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds NNCLR from `config.model`, `config.augment` and `config.nnclr`."""
  del info  # nothing in NNCLR depends on the dataset's size or the run's length
  validate(config)
  c = config.nnclr
  model = common.encoder_projector(config, predictor_hidden_dim=c.predictor_hidden_dim)
  views = common.views_for(config, 2, 'NNCLR')

  def init(rng, images):
    model_rng, queue_rng = jax.random.split(rng)
    params, batch_stats = common.init_variables(model, model_rng, images)
    queue, pointer = memory.init_queue(queue_rng, c.support_size, config.model.projection_dim)
    return params, batch_stats, {'queue': queue, 'queue_pointer': pointer}

  def loss(params, batch_stats, extra, batch, step, rng):
    del step, rng  # deterministic given the views and the support set
    out = common.apply_views(model, params, batch_stats, batch.views)
    h1, batch_stats = out.features, out.batch_stats
    (z1, z2), (p1, p2) = out.projections, out.predictions
    support = jax.lax.stop_gradient(extra['queue'])
    nn1 = nearest_neighbour(z1, support)
    nn2 = nearest_neighbour(z2, support)
    value = 0.5 * (losses.batch_info_nce(nn1, p2, temperature=c.temperature)
                   + losses.batch_info_nce(nn2, p1, temperature=c.temperature))
    z1_unit = losses.l2_normalize(jax.lax.stop_gradient(z1).astype(jnp.float32))
    queue, pointer = memory.queue_push(extra['queue'], extra['queue_pointer'], z1_unit)
    p2_unit = losses.l2_normalize(jax.lax.stop_gradient(p2).astype(jnp.float32))
    metrics = {'nn_cosine': jnp.mean(jnp.sum(z1_unit * nn1, axis=-1)),
               'positive_cosine': jnp.mean(jnp.sum(nn1 * p2_unit, axis=-1))}
    return value, LossOutput(batch_stats=batch_stats,
                             extra={'queue': queue, 'queue_pointer': pointer},
                             metrics=metrics, features=h1, embeddings=(z1, z2))

  return Method(name='nnclr', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=common.encode_fn(model))
