"""Barlow Twins (Zbontar et al. 2021): make the cross-correlation of two views' embeddings the
identity.

One network (encoder + projector) encodes both views; the loss is
`Σ_i (1 - c_ii)² + λ Σ_{i≠j} c_ij²` with `c` the [D, D] cross-correlation, over the global batch,
of the two views' projections, each dimension standardised over the batch
(`jssl.losses.barlow_twins`): the diagonal term makes the embedding invariant to the
augmentations, the off-diagonal one decorrelates its dimensions (redundancy reduction).

Choices:
* Projector: `config.model.projection_layers` Dense layers (BN + ReLU between, a plain linear
  output), the paper's 3 layers of 8192; the digits config uses 3 layers of 512 -> 128.
* λ (`config.barlow_twins.lambd`): the paper's 5e-3 was tuned for D = 8192. The redundancy term
  sums D(D - 1) squared correlations against the D terms of the invariance term, so the
  balance depends on D; for small D a larger λ of about 1/D has been suggested (Tsai et al.
  2021), which the digits config uses.
* Standardisation with the biased (divide by N) std, as the official code's BatchNorm does, so
  that `c` is the exact correlation matrix (see `jssl.losses.barlow_twins_terms`).
* BatchNorm: each view is a separate call, so BatchNorm normalises over one view of the global
  batch, as the official code does (two calls under SyncBN).
* The paper's LARS uses a separate learning rate for biases and BN parameters (0.0048 vs 0.2);
  the shared optimizer has one rate for all (it excludes them from weight decay and LARS
  adaptation, as the paper does).
* Diagnostics: `embeddings` are the projections (z1, z2) the loss correlates; the metrics
  'invariance' and 'redundancy' are the loss's two unweighted terms.

State (`extra`): {} (nothing besides the parameters).
"""

from __future__ import annotations

import ml_collections

from jssl import losses
from jssl import models
from jssl.config import ConfigError
from jssl.methods import common
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first bad field of `config.barlow_twins`."""
  lambd = config.barlow_twins.lambd
  if lambd < 0:
    raise ConfigError(f'config.barlow_twins.lambd={lambd} must be >= 0 (paper: 5e-3 for '
                      'D = 8192; about 1/D for small D).')


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds Barlow Twins from `config.model`, `config.augment` and `config.barlow_twins`."""
  del info  # nothing in Barlow Twins depends on the dataset's size or the run's length
  validate(config)
  lambd = config.barlow_twins.lambd
  model = common.encoder_projector(config)
  views = common.views_for(config, 2, 'Barlow Twins')

  def init(rng, images):
    params, batch_stats = common.init_variables(model, rng, images)
    return params, batch_stats, {}

  def loss(params, batch_stats, extra, batch, step, rng):
    del step, rng  # the loss is deterministic given the views.
    out = common.apply_views(model, params, batch_stats, batch.views)
    terms = losses.barlow_twins_terms(*out.projections)
    value = terms['invariance'] + lambd * terms['redundancy']
    metrics = {'invariance': terms['invariance'], 'redundancy': terms['redundancy']}
    return value, LossOutput(batch_stats=out.batch_stats, extra=extra, metrics=metrics,
                             features=out.features, embeddings=tuple(out.projections))

  return Method(name='barlow_twins', views=views,
                features_dim=models.features_dim(config.model), init=init, loss=loss,
                encode=common.encode_fn(model))
