"""VICReg (Bardes, Ponce & LeCun 2022): variance, invariance and covariance regularisation.

One network (encoder + expander) encodes both views; the loss
(`jssl.losses.vicreg`) is

  λ s(Z, Z') + μ [v(Z) + v(Z')] + ν [c(Z) + c(Z')],

with s the mean squared error between the two views' embeddings (invariance), v a hinge on each
dimension's batch std that keeps it at least 1 (variance, against collapse) and c the sum of
squared off-diagonal covariances / D (covariance, decorrelation). All statistics are over the
global batch.

Choices:
* Weights λ = μ = 25, ν = 1 (`config.vicreg.sim_weight`, `var_weight`, `cov_weight`), the
  paper's. The two branches' variance terms are summed as in the paper (eq. 6, Algorithm 1);
  the released code averages them, the same as μ = 12.5 here.
* Expander: `config.model.projection_layers` Dense layers (BN + ReLU between, a plain linear
  output), the paper's 3 layers of 8192; the digits config uses 3 layers of 512.
* BatchNorm: each view is a separate call, so BatchNorm normalises over one view of the global
  batch, as the official code does (two calls under SyncBN).
* Diagnostics: `embeddings` are the expander outputs (z1, z2) the loss acts on; the metrics
  'invariance', 'variance' and 'covariance' are the loss's unweighted terms.

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

_WEIGHTS = ('sim_weight', 'var_weight', 'cov_weight')


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first bad field of `config.vicreg`."""
  c = config.vicreg
  for name in _WEIGHTS:
    if c[name] < 0:
      raise ConfigError(f'config.vicreg.{name}={c[name]} must be >= 0 (paper: sim_weight=25, '
                        'var_weight=25, cov_weight=1).')


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds VICReg from `config.model`, `config.augment` and `config.vicreg`."""
  del info  # nothing in VICReg depends on the dataset's size or the run's length
  validate(config)
  weights = {name: config.vicreg[name] for name in _WEIGHTS}
  model = common.encoder_projector(config)
  views = common.views_for(config, 2, 'VICReg')

  def init(rng, images):
    params, batch_stats = common.init_variables(model, rng, images)
    return params, batch_stats, {}

  def loss(params, batch_stats, extra, batch, step, rng):
    del step, rng  # the loss is deterministic given the views.
    out = common.apply_views(model, params, batch_stats, batch.views)
    terms = losses.vicreg_terms(*out.projections)
    value = (weights['sim_weight'] * terms['invariance']
             + weights['var_weight'] * terms['variance']
             + weights['cov_weight'] * terms['covariance'])
    return value, LossOutput(batch_stats=out.batch_stats, extra=extra, metrics=dict(terms),
                             features=out.features, embeddings=tuple(out.projections))

  return Method(name='vicreg', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=common.encode_fn(model))
