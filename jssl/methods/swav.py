"""SwAV (Caron et al. 2020): swapping assignments between views, with multi-crop.

Every view goes through the encoder and the projection head; the projection is L2-normalised
and scored against K prototypes (cosine similarities). For each of the two global views, soft
codes are computed from its scores by Sinkhorn-Knopp (an equipartition of the batch over the
prototypes, no gradient) and predicted from every other view's scores through a softmax at
temperature 0.1 (`jssl.losses.swav_multicrop`). The loss averages the (code, prediction) pairs
as SwAV's code does (the paper's two-view Eq. (1) is the sum of the two terms).

Choices where the paper leaves room:

* Prototype normalisation. The paper re-normalises the prototype matrix C to unit columns
  after every update. A loss cannot change parameters here (the optimizer owns them), so the
  prototypes are normalised in the forward pass: scores = ẑ · c / ||c||. At a unit-norm c the
  two agree to first order in the learning rate: our gradient is the paper's with its radial
  component removed, and the paper's explicit re-normalisation discards the radial part of
  its step. They differ in that ||c|| is not reset: the stored vectors grow slowly under
  updates orthogonal to them (shrinking the angular step size) and shrink under weight
  decay, which stays on the prototypes as in SwAV (their LARS applies it to every weight).
* Prototype freezing. The paper's prototypes get no update during the first epoch; here
  their kernel passes through `stop_gradient` while `step < freeze_prototypes_epochs ·
  steps_per_epoch`, so their gradient is exactly zero (an optimizer's decoupled weight decay
  still shrinks the stored norm a little, which the normalisation makes irrelevant).
* Epochs to steps: `steps_per_epoch = num_examples // batch_size`, the shared iterator's.
* Queue (`queue_size > 0`): one FIFO queue per global view of its past unit projections
  (`jssl.methods.memory.queue_push`), pushed every step. From step `max(queue_start_epoch ·
  steps_per_epoch, queue_size / batch_size)` on (only once it holds real projections, as
  SwAV's code waits for its zero-filled queue to be full) the queue's scores against the
  current prototypes join the batch's for Sinkhorn, and the batch rows' codes are used.
* Multi-crop and BatchNorm. The views are grouped by resolution (the two global views, then
  the `config.augment.num_local_crops` local ones); the encoder runs once per group on the
  group's interleaved views, so its BatchNorm statistics are per resolution group, and the
  projection head runs once on every view's representation, so its BatchNorm normalises over
  all crops together. This is what the multi-crop wrappers of SwAV's and DINO's code do.
* Diagnostics embeddings: the unit projections of the two global views (what the prototypes
  score).

State (`extra`): {} without a queue; with one, 'queue' [2, queue_size, D] unit projections of
the global views and 'queue_pointer' (the oldest row, shared by both queues).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
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

NUM_GLOBAL_VIEWS = 2


class NormalizedLinear(nn.Module):
  """A bias-free linear layer whose weight columns are used at unit L2 norm.

  `x @ (W / ||W||_columns)`: SwAV's prototypes (scores are cosines for unit x) and DINO's
  weight-normalised last layer (weight norm with the gain fixed at 1). The parameter is named
  `kernel`, so weight decay and LARS treat it as the weight it is. Its default init (LeCun
  normal) gives columns of norm about 1, the paper's unit prototypes.

  Attributes:
    features: K, the number of outputs (prototypes).
  """
  features: int
  kernel_init: Callable[..., Any] = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x):
    """[N, D] -> [N, K] float32."""
    kernel = self.param('kernel', self.kernel_init, (x.shape[-1], self.features), jnp.float32)
    return jnp.asarray(x, jnp.float32) @ losses.l2_normalize(kernel, axis=0)


class MultiCropNetwork(nn.Module):
  """Encoder run once per resolution group of views, head run once on all of them.

  `__call__(views)` takes V views [B, H_v, W_v, C] (consecutive views of equal size form a
  group, e.g. 2 global then 6 local crops); each group's views are interleaved
  (`common.interleave`) into one encoder call, so an example's views stay on its device and
  BatchNorm normalises over the group's views of the global batch. The head gets every view's
  representation in one call. Returns `(h, outputs)`: `h` [B, F] the representation of view 0
  (for the online probe) and the head's outputs (a pytree) with leading axes [V, B].
  """
  encoder: nn.Module
  head: nn.Module

  def __call__(self, views, *, train: bool):
    batch = views[0].shape[0]
    groups = [list(group) for _, group in itertools.groupby(views, key=lambda v: v.shape)]
    representations = []
    for group in groups:
      h = self.encoder(common.interleave(tuple(group)), train=train)
      representations.append(h.reshape((batch, len(group)) + h.shape[1:]))
    h = jnp.concatenate(representations, axis=1)  # [B, V, F], row b = one example's views
    outputs = self.head(h.reshape((-1,) + h.shape[2:]), train=train)
    outputs = jax.tree_util.tree_map(
        lambda x: jnp.swapaxes(x.reshape((batch, len(views)) + x.shape[1:]), 0, 1), outputs)
    return h[:, 0], outputs

  def encode(self, images):
    return self.encoder(images, train=False)


class SwAVHead(nn.Module):
  """Projection head, L2 normalisation, prototypes: [N, F] -> (unit z [N, D], scores [N, K])."""
  projector: nn.Module
  num_prototypes: int

  @nn.compact
  def __call__(self, h, *, train: bool):
    z = losses.l2_normalize(self.projector(h, train=train))
    return z, NormalizedLinear(self.num_prototypes, name='prototypes')(z)


def multicrop_encode_fn(model: MultiCropNetwork):
  """`Method.encode` of a MultiCropNetwork: the frozen encoder in inference mode."""

  def encode(params, batch_stats, images):
    return model.apply({'params': params, 'batch_stats': batch_stats}, images,
                       method=MultiCropNetwork.encode)

  return encode


def steps_per_epoch(config: ml_collections.ConfigDict, info: TrainInfo) -> int:
  """Optimizer steps per epoch of the shared iterator (drops the last partial batch)."""
  return max(1, info.num_examples // config.batch_size)


def freeze_subtree(params: dict, path: tuple[str, ...], frozen: jax.Array) -> dict:
  """`params` with the leaf at `path` behind a stop-gradient while `frozen` (a bool scalar).

  The value is unchanged; only its gradient is zero while frozen.
  """
  head, *rest = path
  if not rest:
    leaf = params[head]
    return {**params, head: jnp.where(frozen, jax.lax.stop_gradient(leaf), leaf)}
  return {**params, head: freeze_subtree(params[head], tuple(rest), frozen)}


PROTOTYPES = ('head', 'prototypes', 'kernel')


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks `config.swav` (and the queue against the global batch); raises ConfigError."""
  c = config.swav
  for field in ('temperature', 'epsilon'):
    if c[field] <= 0:
      raise ConfigError(f'config.swav.{field}={c[field]} must be positive (SwAV: temperature '
                        '0.1, epsilon 0.05).')
  if c.sinkhorn_iterations < 1:
    raise ConfigError(f'config.swav.sinkhorn_iterations={c.sinkhorn_iterations} must be >= 1 '
                      '(SwAV: 3).')
  if c.num_prototypes < 1:
    raise ConfigError(f'config.swav.num_prototypes={c.num_prototypes} must be >= 1 (SwAV: 3000 '
                      'on ImageNet; a few times the number of classes on small data).')
  for field in ('freeze_prototypes_epochs', 'queue_start_epoch'):
    if c[field] < 0:
      raise ConfigError(f'config.swav.{field}={c[field]} must be >= 0.')
  memory.validate_fifo_size('swav.queue_size', c.queue_size, config.batch_size,
                            what='projections', optional=True)


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds SwAV from `config.model`, `config.augment` (multi-crop) and `config.swav`."""
  validate(config)
  c = config.swav
  views = common.multicrop_views(config, 'SwAV')
  model = MultiCropNetwork(
      encoder=models.encoder_from_config(config.model),
      head=SwAVHead(projector=common.projection_head(config), num_prototypes=c.num_prototypes))
  epoch_steps = steps_per_epoch(config, info)
  freeze_steps = round(c.freeze_prototypes_epochs * epoch_steps)
  queue_start = max(round(c.queue_start_epoch * epoch_steps), c.queue_size // config.batch_size)
  hyper = {'num_global': NUM_GLOBAL_VIEWS, 'temperature': c.temperature,
           'epsilon': c.epsilon, 'num_iters': c.sinkhorn_iterations}

  def init(rng, images):
    model_rng, queue_rng = jax.random.split(rng)
    params, batch_stats = common.init_variables(model, model_rng, (images,))
    extra = {}
    if c.queue_size:
      queues = [memory.init_queue(key, c.queue_size, config.model.projection_dim)[0]
                for key in jax.random.split(queue_rng, NUM_GLOBAL_VIEWS)]
      extra = {'queue': jnp.stack(queues), 'queue_pointer': jnp.zeros((), jnp.int32)}
    return params, batch_stats, extra

  def loss(params, batch_stats, extra, batch, step, rng):
    del rng
    frozen = step < freeze_steps
    params = freeze_subtree(params, PROTOTYPES, frozen)
    (h, (z, scores)), batch_stats = common.apply_train(model, params, batch_stats, batch.views)
    metrics = {'prototypes_frozen': frozen.astype(jnp.float32)}
    new_extra = {}
    if c.queue_size:
      prototypes = jax.lax.stop_gradient(losses.l2_normalize(
          params['head']['prototypes']['kernel'], axis=0))
      queue_scores = extra['queue'] @ prototypes  # [2, Q, K] against the current prototypes
      use_queue = step >= queue_start
      value = jax.lax.cond(
          use_queue,
          lambda s: losses.swav_multicrop(s, queue_scores=queue_scores, **hyper),
          lambda s: losses.swav_multicrop(s, **hyper),
          scores)
      pushed = [memory.queue_push(extra['queue'][i], extra['queue_pointer'], z[i])
                for i in range(NUM_GLOBAL_VIEWS)]
      new_extra = {'queue': jnp.stack([queue for queue, _ in pushed]),
                   'queue_pointer': pushed[0][1]}
      metrics['queue_in_use'] = use_queue.astype(jnp.float32)
    else:
      value = losses.swav_multicrop(scores, **hyper)
    first = jax.lax.stop_gradient(scores[0])
    codes = losses.sinkhorn(first, epsilon=c.epsilon, num_iters=c.sinkhorn_iterations)
    # Fraction of prototypes that are some example's best match: collapse drives it to 1 / K.
    best = jax.nn.one_hot(jnp.argmax(first, axis=-1), c.num_prototypes)
    metrics['used_prototypes'] = jnp.mean(jnp.max(best, axis=0))
    metrics['code_max'] = jnp.mean(jnp.max(codes, axis=-1))
    # Spread of an example's scores over the prototypes; near 0 the codes and predictions are
    # uniform (the projections are orthogonal to, or equidistant from, every prototype).
    metrics['score_std'] = jnp.mean(jnp.std(first, axis=-1))
    z = jax.lax.stop_gradient(z)
    return value, LossOutput(batch_stats=batch_stats, extra=new_extra, metrics=metrics,
                             features=h, embeddings=(z[0], z[1]))

  return Method(name='swav', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=multicrop_encode_fn(model))
