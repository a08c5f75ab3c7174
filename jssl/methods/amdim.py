"""Augmented Multiscale Deep InfoMax (AMDIM, Bachman, Hjelm & Buchwalter 2019).

Two augmented views of each image go through the config's image encoder. Features at several
scales are read from it: the pooled representation h (AMDIM's 1x1 global features) and the
feature maps of `amdim.local_blocks` (the encoder's last map, then the one before: AMDIM's 5x5
and 7x7 maps), each embedded by its own residual critic network (`dim.ResidualCritic`, to
`amdim.critic_dim`). InfoNCE (`jssl.losses.dim_local_global`, negatives from the other images
of the batch at every position) is computed across views in both directions for:

* global -> local at every scale of `local_blocks` (AMDIM's 1-5 and 1-7 predictions);
* local -> local on the first of `local_blocks` (AMDIM's 5-5): a position of one view's map
  predicts every position of the other view's map. `amdim.local_queries='sampled'` (the
  default, as the authors' code does) draws one querying position per image at random each
  step; 'all' averages over every querying position, P times the cost of 'sampled' (B^2 P^2 D
  instead of B^2 P D multiply-adds per direction: on Fashion-MNIST's 7x7 map, 49 times).

Scores are soft-clipped to c * tanh(s / c) with c = `amdim.score_clip` (20 in the paper) and
penalised by `amdim.score_penalty` * mean(s^2) (4e-2). The objective is the mean of all terms.
The representation for the probes is h, as for every image encoder in jssl (the paper probes
its own global and local features).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from jssl import losses
from jssl import models
from jssl.config import ConfigError
from jssl.methods import common
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo
from jssl.methods.dim import ResidualCritic


LOCAL_QUERIES = ('sampled', 'all')


def local_query_positions(rng: jax.Array, batch: int, positions: int) -> jax.Array:
  """[2, B] int32: the querying position of each image for the two directions (view 0 -> 1,
  then 1 -> 0) of the sampled local -> local term."""
  return jax.random.randint(rng, (2, batch), 0, positions)


def _check(config: ml_collections.ConfigDict) -> None:
  c = config.amdim
  common.require_positive_ints(config, 'amdim', ('critic_dim',))
  blocks = tuple(c.local_blocks)
  if not blocks or any(not isinstance(b, int) for b in blocks) or len(set(blocks)) != len(blocks):
    raise ConfigError(f'config.amdim.local_blocks={c.local_blocks!r} must be distinct feature '
                      'map indices, e.g. (-1, -2): the last map and the one before.')
  if c.score_clip is not None and not c.score_clip > 0:
    raise ConfigError(f'config.amdim.score_clip={c.score_clip!r} must be > 0 (or None).')
  if not c.score_penalty >= 0:
    raise ConfigError(f'config.amdim.score_penalty={c.score_penalty!r} must be >= 0.')
  if c.local_queries not in LOCAL_QUERIES:
    raise ConfigError(f'config.amdim.local_queries={c.local_queries!r} is unknown; choose one of '
                      f'{list(LOCAL_QUERIES)}.')


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds AMDIM from `config.model`, `config.augment` and `config.amdim`."""
  del info
  _check(config)
  c = config.amdim
  blocks = tuple(c.local_blocks)
  encoder = models.encoder_from_config(config.model)
  views = common.views_for(config, 2, 'AMDIM')
  heads = {'global_head': ResidualCritic(c.critic_dim),
           **{f'local_head_{i}': ResidualCritic(c.critic_dim) for i in range(len(blocks))}}
  nce = lambda local, global_: losses.dim_local_global(
      local, global_, estimator='infonce', score_clip=c.score_clip, score_penalty=c.score_penalty)

  def embed(params, batch_stats, images):
    """(h [B, F], global embedding [B, D], local embeddings per scale [B, P_s, D], stats)."""
    h, maps, stats = common.encoder_with_maps(encoder, params, batch_stats, images, blocks,
                                              'amdim.local_blocks')
    apply = lambda name, x: heads[name].apply({'params': params[name]}, x)
    local = [apply(f'local_head_{i}', m).reshape(m.shape[0], -1, c.critic_dim)
             for i, m in enumerate(maps)]
    return h, apply('global_head', h), local, stats

  def init(rng, images):
    keys = jax.random.split(rng, len(heads) + 1)
    variables = encoder.init(keys[0], images, train=True)
    params = {'encoder': variables['params']}
    batch_stats = {'encoder': variables['batch_stats']}
    h, maps, _ = common.encoder_with_maps(encoder, params, batch_stats, images, blocks,
                                          'amdim.local_blocks')
    inputs = [h] + list(maps)
    for key, (name, head), x in zip(keys[1:], heads.items(), inputs):
      params[name] = head.init(key, x)['params']
    return params, batch_stats, {}

  def local_local(local_a, local_b, queries):
    """InfoNCE of view a's positions (all, or one per image at `queries` [B]) against view b's
    map."""
    if queries is not None:
      return nce(local_b, local_a[jnp.arange(local_a.shape[0]), queries])
    return jnp.mean(jax.vmap(lambda query: nce(local_b, query), in_axes=1)(local_a))

  def loss(params, batch_stats, extra, batch, step, rng):
    del step
    outputs = []
    for view in batch.views:
      h, global_, local, stats = embed(params, batch_stats, view)
      batch_stats = {**batch_stats, 'encoder': stats}
      outputs.append((h, global_, local))
    metrics, terms = {}, []
    batch_size, positions = outputs[0][2][0].shape[:2]
    queries = (local_query_positions(rng, batch_size, positions)
               if c.local_queries == 'sampled' else [None, None])
    for direction, (a, b) in enumerate(((0, 1), (1, 0))):
      (_, global_a, local_a), (_, _, local_b) = outputs[a], outputs[b]
      for i in range(len(blocks)):
        terms.append(nce(local_b[i], global_a))
      terms.append(local_local(local_a[0], local_b[0], queries[direction]))  # 5-5
    per_pair = len(blocks) + 1
    for i in range(len(blocks)):
      metrics[f'nce_global_local{i}'] = (terms[i] + terms[per_pair + i]) / 2
    metrics['nce_local_local'] = (terms[per_pair - 1] + terms[-1]) / 2
    value = sum(terms) / len(terms)
    return value, LossOutput(batch_stats=batch_stats, extra=extra, metrics=metrics,
                             features=outputs[0][0], embeddings=(outputs[0][1], outputs[1][1]))

  return Method(name='amdim', views=views, features_dim=encoder.features_dim, init=init,
                loss=loss, encode=common.encoder_encode_fn(encoder))
