"""SimCLR (Chen et al. 2020): two augmented views, an MLP projector, NT-Xent over the batch.

Both views go through the encoder in one call, interleaved as [x1_0, x2_0, x1_1, x2_1, ...]
so that each device keeps both views of its own examples (no resharding), and BatchNorm
normalises over all 2N views of the global batch (SimCLR's global BN).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jssl import augment
from jssl import losses
from jssl import models
from jssl.methods.base import LossOutput
from jssl.methods.base import Method


class EncoderProjector(nn.Module):
  """Encoder followed by a projection head; `encode` gives the representation alone."""
  encoder: nn.Module
  projector: nn.Module

  def __call__(self, images, *, train: bool):
    h = self.encoder(images, train=train)
    return h, self.projector(h, train=train)

  def encode(self, images):
    return self.encoder(images, train=False)


def projection_head(config: ml_collections.ConfigDict) -> nn.Module:
  m = config.model
  return models.MLPHead(
      hidden_dims=(m.projection_hidden_dim,) * (m.projection_layers - 1),
      output_dim=m.projection_dim, dtype=models.DTYPES[m.dtype])


def interleave(views: tuple[jax.Array, ...]) -> jax.Array:
  """[V] x [B, ...] -> [B * V, ...] with the V views of example i in rows i*V ... i*V+V-1."""
  stacked = jnp.stack(views, axis=1)
  return stacked.reshape((-1,) + stacked.shape[2:])


def deinterleave(x: jax.Array, num_views: int) -> list[jax.Array]:
  """Inverse of `interleave`: [B * V, ...] -> [V] x [B, ...]."""
  x = x.reshape((-1, num_views) + x.shape[1:])
  return [x[:, v] for v in range(num_views)]


def create(config: ml_collections.ConfigDict) -> Method:
  """Builds SimCLR from `config.model`, `config.augment` and `config.simclr`."""
  encoder = models.encoder_from_config(config.model)
  model = EncoderProjector(encoder=encoder, projector=projection_head(config))
  temperature = config.simclr.temperature
  views = augment.views_from_config(config.augment, out_size=config.dataset.image_size)
  if len(views) != 2:
    raise ValueError(f'SimCLR uses 2 views; augment preset {config.augment.preset!r} gives '
                     f'{len(views)}.')

  def init(rng, images):
    variables = model.init(rng, images, train=True)
    return variables['params'], variables.get('batch_stats', {}), {}

  def loss(params, batch_stats, extra, views, step, rng):
    del step, rng  # SimCLR's loss is deterministic given the views.
    (h, z), updates = model.apply({'params': params, 'batch_stats': batch_stats},
                                  interleave(views), train=True, mutable=['batch_stats'])
    z1, z2 = deinterleave(z, 2)
    value = losses.nt_xent(z1, z2, temperature=temperature)
    return value, LossOutput(batch_stats=updates['batch_stats'], extra=extra, metrics={},
                             features=deinterleave(h, 2)[0])

  def encode(params, batch_stats, images):
    return model.apply({'params': params, 'batch_stats': batch_stats}, images,
                       method=EncoderProjector.encode)

  return Method(name='simclr', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=encode)
