"""Mean Shift for self-supervised learning, MSF (Koohpayegani, Tejankar & Pirsiavash 2021).

BYOL's regression target is widened from one view of the same image to its k nearest
neighbours: the online network (encoder, projector, predictor) embeds view 1 as a prediction
p; the target network (an EMA of encoder + projector, no gradient) embeds view 2 as t. A FIFO
memory bank holds unit target embeddings of recent batches; the k bank rows nearest to t
(cosine) are found, and the loss pulls p towards each of them:

    loss = mean_batch mean_{j in kNN(t)} ||p/|p| - b_j||² = mean of (2 - 2 cos(p, b_j)).

Grouping p with the neighbours of t, rather than with t alone, is a mean-shift step in the
embedding space: each image is moved towards the mean of its neighbourhood.

Choices, checked against the paper and its official code:
- Order within a step: the target takes its EMA step towards the current online network, t is
  computed and ENQUEUED FIRST, then the k neighbours are searched in the bank that now holds
  t. So t is its own nearest neighbour (cosine 1) and the loss always contains BYOL's term
  ||p - t||²; the other k - 1 neighbours come from earlier batches (or from this batch).
- Not symmetrised: the loss has one direction, the online network on view 1 and the target on
  view 2, as in the official code. The paper's best setting makes the views asymmetric
  anyway: view 1 (online, "query") gets the strong MoCo v2 augmentation and view 2 (target) a
  weak one, a random resized crop and a flip only. `config.meanshift.weak_target_view=True`
  (the default) strips colour jitter, grayscale, blur and solarization from view 2 of the
  augmentation preset, keeping its crop and flip.
- EMA momentum: constant (the official code has no schedule), the paper's 0.99 on
  fashion_mnist and cifar10 but 0.9 on digits, whose short runs (4 steps an epoch) would
  otherwise leave the target close to its random initialisation; a cosine increase is
  available through `config.meanshift.momentum_schedule='cosine'`.
- Bank: starts as random unit vectors (as in the official code), so during the first
  `bank_size / batch_size` steps some of the neighbours are noise. Size: the paper's 128,000
  is 10% of ImageNet; digits has 1,259 training images and its config uses 1,024 (a multiple
  of the batch, validated here). k = 5 (paper; the README's command line uses 10).
- Stop-gradient on the target embeddings and the bank, written out. The target network runs in
  training mode, updating its own BatchNorm statistics, like BYOL's.

State (`extra`): 'target' {params, batch_stats} of the target encoder + projector, 'queue'
[bank_size, projection_dim] of unit target embeddings (the memory bank) and 'queue_pointer'
(its oldest row).

Logged: 'momentum'; 'neighbour_cosine', the mean cosine between t and its k neighbours (1 for
the neighbour that is t itself); 'prediction_cosine', between p and t.
"""

from __future__ import annotations

import dataclasses

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
  """Checks `config.meanshift` against the global batch; raises ConfigError."""
  c = config.meanshift
  batch = config.batch_size
  memory.validate_fifo_size('meanshift.bank_size', c.bank_size, batch, what='targets')
  if not 1 <= c.num_neighbours <= c.bank_size:
    raise ConfigError(f'config.meanshift.num_neighbours={c.num_neighbours} must be in '
                      f'[1, bank_size={c.bank_size}] (paper: 5).')
  memory.validate_ema('meanshift', c, paper='paper: 0.99')
  if c.predictor_hidden_dim <= 0:
    raise ConfigError(f'config.meanshift.predictor_hidden_dim={c.predictor_hidden_dim} must be '
                      'positive: the online network always has a predictor.')


def weak_view(view):
  """MSF's weak target augmentation: `view`'s random resized crop and flip, nothing else."""
  return dataclasses.replace(view, jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0,
                             solarize_prob=0.0)


def mean_shift_loss(prediction: jax.Array, target: jax.Array, bank: jax.Array,
                    num_neighbours: int) -> tuple[jax.Array, dict[str, jax.Array]]:
  """MSF's loss against the k bank rows nearest to each target.

  Args:
    prediction: [B, D] online predictions (normalised here).
    target: [B, D] target embeddings (normalised here; no gradient).
    bank: [K, D] unit embeddings to search, no gradient (already holding `target` in MSF).
    num_neighbours: k <= K.

  Returns:
    (scalar float32 mean over the batch and the k neighbours of ||p - b||² between unit
    vectors, {'neighbour_cosine': mean cos(target, neighbour)}).
  """
  p = losses.l2_normalize(prediction.astype(jnp.float32))
  t = jax.lax.stop_gradient(losses.l2_normalize(target.astype(jnp.float32)))
  bank = jax.lax.stop_gradient(bank)
  index = memory.nearest_neighbours(t, bank, num_neighbours)  # [B, k]
  neighbours = losses.l2_normalize(bank[index])  # [B, k, D]
  distances = 2.0 - 2.0 * jnp.einsum('bd,bkd->bk', p, neighbours)
  metrics = {'neighbour_cosine': jnp.mean(jnp.einsum('bd,bkd->bk', t, neighbours))}
  return jnp.mean(distances), metrics


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds Mean Shift from `config.model`, `config.augment` and `config.meanshift`."""
  validate(config)
  c = config.meanshift
  model = common.encoder_projector(config, predictor_hidden_dim=c.predictor_hidden_dim)
  views = common.views_for(config, 2, 'Mean Shift')
  if c.weak_target_view:
    views = (views[0], weak_view(views[1]))

  def init(rng, images):
    return common.init_with_target_and_queue(model, rng, images, c.bank_size,
                                             config.model.projection_dim)

  def loss(params, batch_stats, extra, batch, step, rng):
    del rng
    momentum, target_params = memory.ema_step(
        extra['target']['params'], common.target_subtree(params), step, c, info.num_steps)
    (h, _, p), batch_stats = common.apply_train(model, params, batch_stats, batch.views[0])
    t, target_stats = common.target_project(model, target_params,
                                            extra['target']['batch_stats'], batch.views[1])
    t = losses.l2_normalize(t.astype(jnp.float32))
    # The current targets join the bank before the search (official MSF): t is its own NN.
    queue, pointer = memory.queue_push(extra['queue'], extra['queue_pointer'], t)
    value, metrics = mean_shift_loss(p, t, queue, c.num_neighbours)
    p_unit = losses.l2_normalize(jax.lax.stop_gradient(p).astype(jnp.float32))
    metrics = {'momentum': momentum, **metrics,
               'prediction_cosine': jnp.mean(jnp.sum(p_unit * t, axis=-1))}
    new_extra = {'target': {'params': target_params, 'batch_stats': target_stats},
                 'queue': queue, 'queue_pointer': pointer}
    return value, LossOutput(batch_stats=batch_stats, extra=new_extra, metrics=metrics,
                             features=h, embeddings=(p, t))

  return Method(name='meanshift', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=common.encode_fn(model))
