"""MoCo v3 (Chen, Xie & He 2021): momentum encoder, predictor, in-batch keys, no queue.

Both views go through the online network (encoder, projector, predictor) and through the
momentum encoder (an EMA of encoder + projector with a cosine schedule of the momentum, no
gradient). The loss is symmetric, `ctr(q1, k2) + ctr(q2, k1)`, where `ctr(q, k)` classifies
each query against all keys of the global batch (its own key is the positive) and is scaled by
2·temperature as in the paper's pseudo-code. Each view is a separate network call, so BatchNorm
normalises over that view of the global batch (the paper's SyncBN).

State (`extra`): 'target' {params, batch_stats} of the momentum encoder.
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
  c = config.moco_v3
  memory.validate_ema('moco_v3', c, paper='paper: 0.99')
  if c.temperature <= 0:
    raise ConfigError(f'config.moco_v3.temperature={c.temperature} must be positive.')
  if c.predictor_hidden_dim <= 0:
    raise ConfigError(f'config.moco_v3.predictor_hidden_dim={c.predictor_hidden_dim} must be '
                      'positive (MoCo v3 always has a predictor).')


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds MoCo v3 from `config.model`, `config.augment` and `config.moco_v3`."""
  validate(config)
  c = config.moco_v3
  model = common.encoder_projector(config, predictor_hidden_dim=c.predictor_hidden_dim)
  views = common.views_for(config, 2, 'MoCo v3')

  def init(rng, images):
    params, batch_stats = common.init_variables(model, rng, images)
    return params, batch_stats, {'target': common.init_target(params, batch_stats)}

  def contrast(q, k):
    return 2.0 * c.temperature * losses.batch_info_nce(q, k, temperature=c.temperature)

  def loss(params, batch_stats, extra, batch, step, rng):
    del rng
    momentum, target_params = memory.ema_step(
        extra['target']['params'], common.target_subtree(params), step, c, info.num_steps)
    out = common.apply_views(model, params, batch_stats, batch.views,
                             target_params=target_params,
                             target_stats=extra['target']['batch_stats'])
    queries, keys = out.predictions, out.targets
    value = contrast(queries[0], keys[1]) + contrast(queries[1], keys[0])
    new_extra = {'target': {'params': target_params, 'batch_stats': out.target_stats}}
    q1 = losses.l2_normalize(jax.lax.stop_gradient(queries[0]))
    metrics = {'momentum': momentum,
               'positive_cosine': jnp.mean(jnp.sum(q1 * losses.l2_normalize(keys[1]), -1))}
    return value, LossOutput(batch_stats=out.batch_stats, extra=new_extra, metrics=metrics,
                             features=out.features, embeddings=(queries[0], keys[1]))

  return Method(name='moco_v3', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=common.encode_fn(model))
