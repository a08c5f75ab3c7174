"""SimCLR (Chen et al. 2020): two augmented views, an MLP projector, NT-Xent over the batch.

Both views go through the encoder in one call, interleaved as [x1_0, x2_0, x1_1, x2_1, ...]
so that each device keeps both views of its own examples (no resharding), and BatchNorm
normalises over all 2N views of the global batch (SimCLR's global BN).

`config.simclr.loss_impl` picks the NT-Xent: 'dense' (the 2N x 2N similarity matrix) or
'blockwise' (tiles of `config.simclr.loss_block_size`, for global batches whose matrix does
not fit in memory); both give the same loss and gradients.
"""

from __future__ import annotations


import ml_collections

from jssl import losses
from jssl import models
from jssl.methods import common
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo

# Kept importable from here for code written against the skeleton.
EncoderProjector = common.EncoderProjector
interleave = common.interleave
deinterleave = common.deinterleave

def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds SimCLR from `config.model`, `config.augment` and `config.simclr`."""
  del info  # nothing in SimCLR depends on the dataset's size
  nt_xent = common.contrastive_loss(config, 'simclr', dense=losses.nt_xent,
                                    blockwise=losses.nt_xent_blockwise,
                                    matrix='2N x 2N matrix')
  model = common.encoder_projector(config)
  temperature = config.simclr.temperature
  views = common.views_for(config, 2, 'SimCLR')

  def init(rng, images):
    params, batch_stats = common.init_variables(model, rng, images)
    return params, batch_stats, {}

  def loss(params, batch_stats, extra, batch, step, rng):
    del step, rng  # SimCLR's loss is deterministic given the views.
    (h, z, _), batch_stats = common.apply_train(model, params, batch_stats,
                                                common.interleave(batch.views))
    z1, z2 = common.deinterleave(z, 2)
    value = nt_xent(z1, z2, temperature=temperature)
    return value, LossOutput(batch_stats=batch_stats, extra=extra, metrics={},
                             features=common.deinterleave(h, 2)[0], embeddings=(z1, z2))

  return Method(name='simclr', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=common.encode_fn(model))
