"""SimSiam (Chen & He 2021): a siamese network, a predictor, and a stop-gradient; no target
network, no negatives, no batch-statistics loss.

One network f (encoder + projector) encodes both views; a predictor h maps one view's
projection to the other's:

  L = D(p1, stopgrad(z2)) / 2 + D(p2, stopgrad(z1)) / 2,   D(p, z) = -cos(p, z),

with z = f(x) and p = h(z). The stop-gradient is what prevents collapse (the paper's Sec. 4.1).

Choices:
* Projector: `config.model.projection_layers` Dense layers of `projection_hidden_dim`, BN and
  ReLU between them and BN on the output (the paper: 3 layers of 2048 with BN on every layer
  for ImageNet, 2 layers for CIFAR). Predictor: the paper's bottleneck Dense(hidden) -> BN ->
  ReLU -> Dense(projection_dim), no BN on its output, hidden = projection_dim / 4 (512 for
  2048).
* BatchNorm: each view is a separate call, so BatchNorm normalises over one view of the global
  batch, as the official code does (f(x1), f(x2) under SyncBN).
* The paper keeps the predictor's learning rate fixed (no decay), slightly better than decaying
  it (its Sec. 4.2); the shared optimizer decays every parameter's rate on the same schedule.
* Diagnostics: `embeddings` are the projections (z1, z2), the output whose per-dimension std
  after L2 normalisation is the paper's collapse measure (Fig. 2). The train loop logs exactly
  that, of z1, as 'output_std' (`jssl.eval.diagnostics`): about 1/sqrt(D) when the outputs
  spread over the sphere, 0 at collapse.

Collapse ablation: `config.simsiam.stop_gradient = False` lets the gradient flow through z too
(the paper's Fig. 2, which collapses).

State (`extra`): {} (nothing besides the parameters).
"""

from __future__ import annotations

import jax
import ml_collections

from jssl import losses
from jssl import models
from jssl.config import ConfigError
from jssl.methods import common
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first bad field of `config.simsiam`."""
  c = config.simsiam
  if c.predictor_hidden_dim <= 0:
    raise ConfigError(f'config.simsiam.predictor_hidden_dim={c.predictor_hidden_dim} must be '
                      'positive (SimSiam needs its predictor; paper: 512 for a 2048-d '
                      'projection).')
  if not isinstance(c.stop_gradient, bool):
    raise ConfigError(f'config.simsiam.stop_gradient={c.stop_gradient!r} must be True or False '
                      '(False is the collapse ablation).')


def build_model(config: ml_collections.ConfigDict) -> common.EncoderProjector:
  """Encoder, SimSiam's projector (BN on its output) and bottleneck predictor."""
  m = config.model
  dtype = models.DTYPES[m.dtype]
  projector = models.MLPHead(hidden_dims=(m.projection_hidden_dim,) * (m.projection_layers - 1),
                             output_dim=m.projection_dim, last_bn=True, dtype=dtype)
  predictor = common.predictor_head(config.simsiam.predictor_hidden_dim, m.projection_dim,
                                    m.dtype)
  return common.EncoderProjector(encoder=models.encoder_from_config(m), projector=projector,
                                 predictor=predictor)


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds SimSiam from `config.model`, `config.augment` and `config.simsiam`."""
  del info  # nothing in SimSiam depends on the dataset's size or the run's length
  validate(config)
  stop_gradient = config.simsiam.stop_gradient
  model = build_model(config)
  views = common.views_for(config, 2, 'SimSiam')

  def init(rng, images):
    params, batch_stats = common.init_variables(model, rng, images)
    return params, batch_stats, {}

  def loss(params, batch_stats, extra, batch, step, rng):
    del step, rng  # SimSiam's loss is deterministic given the views.
    out = common.apply_views(model, params, batch_stats, batch.views)
    (z1, z2), predictions = out.projections, out.predictions
    t1, t2 = (jax.lax.stop_gradient(z1), jax.lax.stop_gradient(z2)) if stop_gradient else (z1, z2)
    value = (0.5 * losses.negative_cosine(predictions[0], t2)
             + 0.5 * losses.negative_cosine(predictions[1], t1))
    return value, LossOutput(batch_stats=out.batch_stats, extra=extra, metrics={},
                             features=out.features, embeddings=(z1, z2))

  return Method(name='simsiam', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=common.encode_fn(model))
