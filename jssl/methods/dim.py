"""Deep InfoMax (Hjelm et al. 2019): maximise the mutual information between an image's global
representation and its local features.

The encoder is the config's image encoder (`config.model`); its pooled output h is the global
representation (what the probes read) and the feature map of block `dim.local_block` (a
`SmallCNN` block or a ResNet stage, counted from 0, negative from the end) holds the local
features, one per position. Separable critics score pairs: a residual MLP on each local feature
(DIM's 1x1-convolution network) and one on h, both to `dim.critic_dim`; pairs from the same
image are positives, pairs across images negatives (`jssl.losses.dim_local_global`), under the
estimator `dim.estimator` ('jsd', DIM's default; 'infonce'; 'dv').

Objective: `local_weight` x local MI (beta; DIM(L) uses 1) + `global_weight` x global MI
(alpha; the whole flattened feature map, summarised by an MLP, against h; DIM(G) uses 1) +
`prior_weight` x prior matching (gamma; 0.1 in the paper). Prior matching trains a
discriminator (`dim.prior_hidden` widths) to tell h from samples of the uniform distribution on
[0, 1]^F, and the encoder to fool it (the non-saturating GAN loss), as a second player updated
after the encoder in the same step. Adaptation: the paper matches a sigmoid of its linear
output Y to the uniform prior; jssl's representation is a mean of ReLU features, already
non-negative, so h itself is matched.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jssl import losses
from jssl import models
from jssl.config import ConfigError
from jssl.losses.predictive import DIM_ESTIMATORS
from jssl.methods import common
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import Player
from jssl.methods.base import TrainInfo


class ResidualCritic(nn.Module):
  """Dense -> ReLU -> Dense plus a linear shortcut, on the last axis (DIM's critic networks)."""
  features: int

  @nn.compact
  def __call__(self, x):
    hidden = nn.relu(nn.Dense(self.features, name='hidden')(x))
    return nn.Dense(self.features, name='out')(hidden) + nn.Dense(self.features,
                                                                  name='shortcut')(x)


class PriorDiscriminator(nn.Module):
  """MLP -> one logit: does a representation come from the prior (high) or the encoder?"""
  hidden: Sequence[int]

  @nn.compact
  def __call__(self, x):
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(1)(x)[:, 0]


def _check(config: ml_collections.ConfigDict) -> None:
  c = config.dim
  if c.estimator not in DIM_ESTIMATORS:
    raise ConfigError(f'config.dim.estimator={c.estimator!r} is unknown; choose one of '
                      f'{list(DIM_ESTIMATORS)}.')
  weights = {name: c[name] for name in ('local_weight', 'global_weight', 'prior_weight')}
  if any(not isinstance(v, (int, float)) or v < 0 for v in weights.values()):
    raise ConfigError(f'config.dim weights must be >= 0; got {weights}.')
  if weights['local_weight'] == 0 and weights['global_weight'] == 0:
    raise ConfigError('config.dim.local_weight and global_weight are both 0: there is no '
                      'mutual information to maximise (DIM(L): local_weight=1; DIM(G): '
                      'global_weight=1).')
  common.require_positive_ints(config, 'dim', ('critic_dim',))
  if c.prior_weight > 0 and (not c.prior_hidden or any(
      not isinstance(w, int) or w < 1 for w in c.prior_hidden)):
    raise ConfigError(f'config.dim.prior_hidden={c.prior_hidden!r} must be positive widths '
                      '(the prior discriminator\'s hidden layers) when prior_weight > 0.')


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds Deep InfoMax from `config.model` and `config.dim`."""
  del info
  _check(config)
  c = config.dim
  encoder = models.encoder_from_config(config.model)
  views = common.views_for(config, 1, 'Deep InfoMax')
  heads = {'local_head': ResidualCritic(c.critic_dim), 'global_head': ResidualCritic(c.critic_dim)}
  if c.global_weight > 0:
    heads['map_head'] = ResidualCritic(c.critic_dim)
    heads['global_map_head'] = ResidualCritic(c.critic_dim)
  prior = PriorDiscriminator(tuple(c.prior_hidden)) if c.prior_weight > 0 else None

  def run_encoder(params, batch_stats, images):
    h, (local_map,), stats = common.encoder_with_maps(encoder, params, batch_stats, images,
                                                      (c.local_block,), 'dim.local_block')
    return h, local_map, stats

  def init(rng, images):
    keys = jax.random.split(rng, len(heads) + 2)
    variables = encoder.init(keys[0], images, train=True)
    params = {'encoder': variables['params']}
    batch_stats = {'encoder': variables['batch_stats']}
    h, local_map, _ = run_encoder(params, batch_stats, images)
    inputs = {'local_head': local_map, 'global_head': h, 'global_map_head': h,
              'map_head': local_map.reshape(local_map.shape[0], -1)}
    for key, (name, head) in zip(keys[2:], heads.items()):
      params[name] = head.init(key, inputs[name])['params']
    if prior is not None:
      params['prior'] = prior.init(keys[1], h)['params']
    return params, batch_stats, {}

  def mi_terms(params, h, local_map):
    """({'local_mi_loss'[, 'global_mi_loss']}: the estimator's losses of the two objectives,
    the local critic's outputs [B, M, M, D], the global critic's [B, D])."""
    apply = lambda name, x: heads[name].apply({'params': params[name]}, x)
    local, global_ = apply('local_head', local_map), apply('global_head', h)
    terms = {'local_mi_loss': losses.dim_local_global(
        local.reshape(local.shape[0], -1, local.shape[-1]), global_, estimator=c.estimator)}
    if c.global_weight > 0:
      summary = apply('map_head', local_map.reshape(local_map.shape[0], -1))
      terms['global_mi_loss'] = losses.dim_local_global(
          summary[:, None], apply('global_map_head', h), estimator=c.estimator)
    return terms, local, global_

  def dim_loss(params, batch_stats, extra, batch, step, rng):
    del step, rng
    (view,) = batch.views
    h, local_map, encoder_stats = run_encoder(params, batch_stats, view)
    terms, local, global_ = mi_terms(params, h, local_map)
    value = c.local_weight * terms['local_mi_loss'] + c.global_weight * terms.get(
        'global_mi_loss', 0.0)
    metrics = dict(terms)
    if prior is not None:
      fooled = jnp.mean(jax.nn.softplus(-prior.apply({'params': params['prior']}, h)))
      metrics['prior_generator_loss'] = fooled
      value = value + c.prior_weight * fooled
    # Collapse diagnostics: DIM has one view, so its local and global critic spaces are
    # compared: the mean projected local feature and the projected global vector.
    pair = (jnp.mean(local, axis=(1, 2)), global_)
    return value, LossOutput(batch_stats={**batch_stats, 'encoder': encoder_stats}, extra=extra,
                             metrics=metrics, features=h, embeddings=pair)

  encode = common.encoder_encode_fn(encoder)

  if prior is None:
    return Method(name='dim', views=views, features_dim=encoder.features_dim, init=init,
                  loss=dim_loss, encode=encode)

  def prior_loss(params, batch_stats, extra, batch, step, rng):
    """The discriminator's GAN loss: the prior's samples are real, the encoder's h fake (h of
    the encoder just updated, without gradient to it; its BatchNorm statistics unchanged)."""
    del step
    (view,) = batch.views
    h, _, _ = run_encoder(params, batch_stats, view)
    h = jax.lax.stop_gradient(h)
    samples = jax.random.uniform(rng, h.shape)
    discriminate = lambda x: prior.apply({'params': params['prior']}, x)
    value = losses.gan_discriminator(discriminate(samples), discriminate(h))
    return value, LossOutput(batch_stats=batch_stats, extra=extra, metrics={}, features=None)

  encoder_side = ('encoder',) + tuple(heads)
  players = (Player(name='dim', params=encoder_side, loss=dim_loss),
             Player(name='prior', params=('prior',), loss=prior_loss))
  return Method(name='dim', views=views, features_dim=encoder.features_dim, init=init,
                loss=None, encode=encode, players=players)
