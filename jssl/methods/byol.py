"""BYOL (Grill et al. 2020): an online network predicts a slowly moving target network.

The online network (encoder, projector, predictor) sees both views; the target network, an
exponential moving average (EMA) of the online encoder + projector, sees both views too and is
never trained by the loss. The loss is symmetric,

  byol(p1, stopgrad(z2')) + byol(p2, stopgrad(z1')),   byol(p, z) = mean 2 - 2 cos(p, z),

with p the online predictions and z' the target projections (the paper's L + L~, a sum).

Choices:
* Momentum: the paper's cosine increase `τ = 1 - (1 - τ_base)(cos(πk/K) + 1)/2` from
  `config.byol.momentum` (τ_base) to 1 at the last step K. The EMA update that the paper applies
  after the optimizer step k - 1 is applied here at the start of step k (with τ at step k), from
  the parameters the step receives, and the updated target is used by this step's loss and
  returned as the new state: the same sequence of targets, without a second pass over the
  parameters after the optimizer. At step 0 the target equals the online network.
* BatchNorm: each view is a separate call of each network, so BatchNorm normalises over one view
  of the global batch, as BYOL's official code does (per-view calls, cross-replica BN). The
  target network runs in training mode too (batch statistics), as in the paper's code.
* Diagnostics: `embeddings` are the online projections (z1, z2), the output whose collapse the
  target's EMA copies, so the loop's 'output_std' is SimSiam's collapse measure here too;
  without a predictor they are also what the loss compares. The metric 'prediction_cosine' is
  the mean cosine between p1 and the target's z2'.
* Optimizer (the cifar10 variant): LARS with base learning rate 0.2 x batch/256 and weight
  decay 1.5e-6 (BYOL's ImageNet values). `jssl.train.optim` already excludes biases and
  BatchNorm parameters from both weight decay and LARS's trust-ratio adaptation, as BYOL does.

Collapse ablation: `config.byol.predictor_hidden_dim = 0` removes the predictor (p = online
projection), the paper's ablation of the predictor (Sec. 5), which collapses.

State (`extra`): 'target' {params, batch_stats} of the target encoder + projector.
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
  """Raises ConfigError naming the first bad field of `config.byol`."""
  c = config.byol
  memory.validate_ema('byol', c, paper='the base τ of the cosine schedule; paper: 0.996')
  if c.predictor_hidden_dim < 0:
    raise ConfigError(f'config.byol.predictor_hidden_dim={c.predictor_hidden_dim} must be >= 0 '
                      '(0 removes the predictor, the collapse ablation; paper: 4096).')


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds BYOL from `config.model`, `config.augment` and `config.byol`."""
  validate(config)
  c = config.byol
  model = common.encoder_projector(config, predictor_hidden_dim=c.predictor_hidden_dim)
  views = common.views_for(config, 2, 'BYOL')

  def init(rng, images):
    params, batch_stats = common.init_variables(model, rng, images)
    return params, batch_stats, {'target': common.init_target(params, batch_stats)}

  def loss(params, batch_stats, extra, batch, step, rng):
    del rng  # BYOL's loss is deterministic given the views.
    momentum, target_params = memory.ema_step(
        extra['target']['params'], common.target_subtree(params), step, c, info.num_steps)
    out = common.apply_views(model, params, batch_stats, batch.views,
                             target_params=target_params,
                             target_stats=extra['target']['batch_stats'])
    # No predictor (the collapse ablation): the online projection is the prediction.
    predictions = [z if p is None else p for z, p in zip(out.projections, out.predictions)]
    targets = out.targets
    value = (losses.byol(predictions[0], targets[1]) + losses.byol(predictions[1], targets[0]))
    new_extra = {'target': {'params': target_params, 'batch_stats': out.target_stats}}
    p1 = losses.l2_normalize(jax.lax.stop_gradient(predictions[0]))
    metrics = {'momentum': momentum,
               'prediction_cosine': jnp.mean(jnp.sum(p1 * losses.l2_normalize(targets[1]), -1))}
    return value, LossOutput(batch_stats=out.batch_stats, extra=new_extra, metrics=metrics,
                             features=out.features, embeddings=tuple(out.projections))

  return Method(name='byol', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=common.encode_fn(model))
