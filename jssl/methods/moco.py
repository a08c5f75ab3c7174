"""MoCo v1 / v2 (He et al. 2019; Chen, Fan, Girshick & He 2020): momentum contrast.

The query encoder (encoder + projector, trained) embeds view 1; the key encoder, an EMA of the
query encoder that receives no gradient, embeds view 2. Each query is classified against its
key and the K keys of earlier batches held in a FIFO queue (`jssl.losses.info_nce`); then the
batch's keys are enqueued over the oldest ones. v1 and v2 differ only in settings: v2 has an
MLP projector (`config.model.projection_layers = 2`, v1 has 1: a linear layer), blur in the
augmentation, temperature 0.2 instead of 0.07 and a cosine learning rate.

BatchNorm: sync-BN, not shuffled BN. MoCo shuffles the key batch across GPUs because each GPU
normalised its own 32 samples, so a query and its key shared batch statistics, a signal the
model can use to find the positive ("cheating"). Here every BatchNorm normalises over the whole
global batch (the loss runs on global arrays sharded over the mesh), as SimCLR's global BN and
MoCo v3's SyncBN do: the statistics are the same for every sample of a batch, so there is no
per-group signal to shuffle away, and a shuffle would change nothing. The query and key
batches are still normalised separately (different calls), as in MoCo.

Order within a step (equal to MoCo's Algorithm 1 up to when the key update is written down):
the key encoder takes its EMA step towards the current query encoder, the keys are computed,
the loss uses the queue as it was before this batch, and the keys are enqueued.

State (`extra`): 'target' {params, batch_stats} of the key encoder, 'queue' [K, D] of unit
keys, 'queue_pointer' (the oldest row).

`config.moco.loss_impl` picks the InfoNCE: 'dense' (the N x K logits against the queue) or
'blockwise' (tiles of `config.moco.loss_block_size`, for batches and queues whose N x K logits
do not fit in memory); both give the same loss and gradients.
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
  """Checks `config.moco` against the global batch; raises ConfigError."""
  c = config.moco
  memory.validate_fifo_size('moco.queue_size', c.queue_size, config.batch_size, what='keys')
  memory.validate_ema('moco', c, paper='MoCo: 0.999')
  if c.temperature <= 0:
    raise ConfigError(f'config.moco.temperature={c.temperature} must be positive.')


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds MoCo from `config.model`, `config.augment` and `config.moco`."""
  validate(config)
  c = config.moco
  model = common.encoder_projector(config)
  views = common.views_for(config, 2, 'MoCo')
  info_nce = common.contrastive_loss(config, 'moco', dense=losses.info_nce,
                                     blockwise=losses.info_nce_blockwise,
                                     matrix='N x K logits')

  def init(rng, images):
    return common.init_with_target_and_queue(model, rng, images, c.queue_size,
                                             config.model.projection_dim)

  def loss(params, batch_stats, extra, batch, step, rng):
    del rng
    momentum, target_params = memory.ema_step(
        extra['target']['params'], common.target_subtree(params), step, c, info.num_steps)
    (h, q, _), batch_stats = common.apply_train(model, params, batch_stats, batch.views[0])
    k, target_batch_stats = common.target_project(
        model, target_params, extra['target']['batch_stats'], batch.views[1])
    k = losses.l2_normalize(k)
    value = info_nce(q, k, jax.lax.stop_gradient(extra['queue']), temperature=c.temperature)
    queue, pointer = memory.queue_push(extra['queue'], extra['queue_pointer'], k)
    new_extra = {'target': {'params': target_params, 'batch_stats': target_batch_stats},
                 'queue': queue, 'queue_pointer': pointer}
    qn = losses.l2_normalize(jax.lax.stop_gradient(q))
    metrics = {'momentum': momentum,
               'positive_cosine': jnp.mean(jnp.sum(qn * k, axis=-1)),
               'negative_cosine': jnp.mean(qn @ extra['queue'].T)}
    return value, LossOutput(batch_stats=batch_stats, extra=new_extra, metrics=metrics,
                             features=h, embeddings=(q, k))

  return Method(name='moco', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=common.encode_fn(model))
