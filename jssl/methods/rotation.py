"""RotNet (Gidaris, Singh & Komodakis 2018): recognise which of K rotations an image went through.

Every example's augmented view is rotated by each of the K angles of `config.rotation
.num_rotations` (2: 0 and 180 degrees; 4: multiples of 90, the paper's choice; 8: multiples of
45, sampled bilinearly with zero corners) and all K copies go through the encoder in the same
step, as the paper found best ("all 4 rotated copies in the same mini-batch"), interleaved so
that each device keeps the rotations of its own examples. A classifier head on the encoder's
features (`config.model.projection_layers` Dense layers, hidden width
`projection_hidden_dim`, K outputs; `projection_dim` is not read) is trained with the
cross-entropy of the rotation index. The representation is the encoder's pooled features
(the paper probes intermediate conv blocks of a Network-In-Network; jssl probes the final
pooled features of its encoders, like every other method).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from jssl import models
from jssl.augment.image import rotate
from jssl.config import ConfigError
from jssl.methods import common
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo

# The rotation sets of the paper's ablation on the number of rotations (2, 4 and 8).
ANGLES = {2: (0.0, 180.0), 4: (0.0, 90.0, 180.0, 270.0),
          8: tuple(45.0 * k for k in range(8))}


def rotated_copies(images: jax.Array, num_rotations: int) -> tuple[jax.Array, jax.Array]:
  """Every image under each rotation of `ANGLES[num_rotations]`.

  Args:
    images: [B, S, S, C] square views.
    num_rotations: K, a key of `ANGLES`.

  Returns:
    (rotated [B * K, S, S, C], labels int32 [B * K]): row b * K + k is image b rotated by
    `ANGLES[K][k]` degrees counter-clockwise, with label k (`common.interleave` order).
  """
  copies = tuple(rotate(images, angle) for angle in ANGLES[num_rotations])
  labels = jnp.tile(jnp.arange(num_rotations, dtype=jnp.int32), images.shape[0])
  return common.interleave(copies), labels


def build_model(config: ml_collections.ConfigDict) -> common.EncoderProjector:
  """The encoder and the rotation classifier (`projection_layers` Dense layers, hidden width
  `projection_hidden_dim`, `num_rotations` outputs) of `config`."""
  return common.encoder_classifier(config, config.rotation.num_rotations)


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds RotNet from `config.model`, `config.augment` and `config.rotation`."""
  del info
  num_rotations = config.rotation.num_rotations
  if num_rotations not in ANGLES:
    raise ConfigError(f'config.rotation.num_rotations={num_rotations!r} is not supported; choose '
                      f'one of {sorted(ANGLES)} (0/180, multiples of 90, multiples of 45 degrees).')
  if config.model.projection_layers < 1:
    raise ConfigError(f'config.model.projection_layers={config.model.projection_layers} must be '
                      '>= 1 (1: a linear rotation classifier on the features).')
  views = common.views_for(config, 1, 'Rotation')
  model = build_model(config)

  def init(rng, images):
    params, batch_stats = common.init_variables(model, rng, images)
    return params, batch_stats, {}

  def loss(params, batch_stats, extra, batch, step, rng):
    del step, rng  # every rotation of every view: nothing random here
    (view,) = batch.views
    images, labels = rotated_copies(view, num_rotations)
    (h, logits, _), batch_stats = common.apply_train(model, params, batch_stats, images)
    value, accuracy = common.classification_loss(logits, labels)
    per_rotation = common.deinterleave(h, num_rotations)
    # Collapse diagnostics on the features of the upright and the half-turned copies (the
    # space the classifier reads).
    return value, LossOutput(batch_stats=batch_stats, extra=extra,
                             metrics={'rotation_accuracy': accuracy},
                             features=per_rotation[0],
                             embeddings=(per_rotation[0], per_rotation[num_rotations // 2]))

  return Method(name='rotation', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=common.encode_fn(model))
