"""Pieces several methods share: the encoder + heads module, heads built from the config,
view interleaving, and applying a network in training mode.

Parameter trees of `EncoderProjector` are `{'encoder', 'projector'[, 'predictor']}`; an EMA
target (MoCo's key encoder, BYOL's target) copies `{'encoder', 'projector'}` only, since the
predictor exists on the online side alone.
"""

from __future__ import annotations

import functools
import numbers
import os
from collections.abc import Sequence
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jssl import augment
from jssl import models
from jssl.eval import images as image_files
from jssl.config import ConfigError
from jssl.methods import memory
from jssl.models.resnet import feature_maps

PyTree = Any

# Sub-trees of an EncoderProjector's params that an EMA target network copies.
TARGET_KEYS = ('encoder', 'projector')


class EncoderProjector(nn.Module):
  """Encoder, projection head and an optional predictor.

  `__call__` returns `(h, z, p)`: representation, projection, prediction (None without a
  predictor). `project` runs encoder and projector only (target networks), `encode` the encoder
  in inference mode (evaluation).
  """
  encoder: nn.Module
  projector: nn.Module
  predictor: nn.Module | None = None

  def __call__(self, images, *, train: bool):
    h, z = self.project(images, train=train)
    p = self.predictor(z, train=train) if self.predictor is not None else None
    return h, z, p

  def project(self, images, *, train: bool):
    h = self.encoder(images, train=train)
    return h, self.projector(h, train=train)

  def encode(self, images):
    return self.encoder(images, train=False)


def projection_head(config: ml_collections.ConfigDict) -> nn.Module:
  """The projector of `config.model`: `projection_layers` Dense layers (BN + ReLU between)."""
  m = config.model
  return models.MLPHead(
      hidden_dims=(m.projection_hidden_dim,) * (m.projection_layers - 1),
      output_dim=m.projection_dim, dtype=models.DTYPES[m.dtype])


def encoder_classifier(config: ml_collections.ConfigDict, num_classes: int) -> EncoderProjector:
  """The config's encoder with a classifier head of pretext classes in the projector's place
  (`projection_layers` Dense layers, hidden width `projection_hidden_dim`, `num_classes`
  outputs): RotNet's rotations, ClusterFit's clusters."""
  m = config.model
  return EncoderProjector(
      encoder=models.encoder_from_config(m),
      projector=models.MLPHead(hidden_dims=(m.projection_hidden_dim,) * (m.projection_layers - 1),
                               output_dim=num_classes, dtype=models.DTYPES[m.dtype]))


def predictor_head(hidden_dim: int, output_dim: int, dtype: str) -> nn.Module:
  """BYOL / MoCo v3 / NNCLR predictor: Dense -> BN -> ReLU -> Dense."""
  return models.MLPHead(hidden_dims=(hidden_dim,), output_dim=output_dim,
                        dtype=models.DTYPES[dtype])


def encoder_projector(config: ml_collections.ConfigDict, *,
                      predictor_hidden_dim: int = 0) -> EncoderProjector:
  """`EncoderProjector` from `config.model`; a predictor when `predictor_hidden_dim > 0`."""
  predictor = None
  if predictor_hidden_dim > 0:
    predictor = predictor_head(predictor_hidden_dim, config.model.projection_dim,
                               config.model.dtype)
  return EncoderProjector(encoder=models.encoder_from_config(config.model),
                          projector=projection_head(config), predictor=predictor)


def views_for(config: ml_collections.ConfigDict, count: int, method: str) -> tuple:
  """The first `count` views of `config.augment`'s preset (1 for single-view methods).

  Raises:
    ConfigError: the preset has fewer than `count` views.
  """
  views = augment.views_from_config(config.augment, out_size=config.dataset.image_size)
  if len(views) < count:
    raise ConfigError(f'{method} uses {count} views; config.augment.preset='
                      f'{config.augment.preset!r} gives {len(views)}.')
  return tuple(views[:count])


def multicrop_views(config: ml_collections.ConfigDict, method: str) -> tuple:
  """The preset's two global views followed by `config.augment.num_local_crops` local ones.

  For multi-crop methods (SwAV, DINO): `Batch.views` then holds 2 views of
  `config.dataset.image_size` and V - 2 of `config.augment.local_crop_size`.

  Raises:
    ConfigError: the preset has fewer than two views.
  """
  views = augment.views_from_config(config.augment, out_size=config.dataset.image_size,
                                    multi_crop=True)
  if len(views) - config.augment.num_local_crops < 2:
    raise ConfigError(f'{method} uses two global views; config.augment.preset='
                      f'{config.augment.preset!r} gives {len(views)}.')
  num_global = len(views) - config.augment.num_local_crops
  return tuple(views[:2]) + tuple(views[num_global:])


def interleave(views: tuple[jax.Array, ...]) -> jax.Array:
  """[V] x [B, ...] -> [B * V, ...] with the V views of example i in rows i*V ... i*V+V-1.

  One encoder call on the interleaved views keeps each device's examples on that device (no
  resharding) while BatchNorm still normalises over every view of the global batch.
  """
  stacked = jnp.stack(views, axis=1)
  return stacked.reshape((-1,) + stacked.shape[2:])


def deinterleave(x: jax.Array, num_views: int) -> list[jax.Array]:
  """Inverse of `interleave`: [B * V, ...] -> [V] x [B, ...]."""
  x = x.reshape((-1, num_views) + x.shape[1:])
  return [x[:, v] for v in range(num_views)]


def apply_train(model: nn.Module, params: PyTree, batch_stats: PyTree, *args,
                method=None, **kwargs) -> tuple[Any, PyTree]:
  """Applies `model` in training mode; returns (outputs, new batch_stats)."""
  outputs, updates = model.apply({'params': params, 'batch_stats': batch_stats}, *args,
                                 train=True, mutable=['batch_stats'], method=method, **kwargs)
  return outputs, updates.get('batch_stats', {})


class ViewOutputs(NamedTuple):
  """What `apply_views` returns: one entry per view in the lists, in the views' order."""
  features: jax.Array  # h of the first view, [B, F] (what the online probe and kNN see)
  projections: list  # z per view, [B, D]
  predictions: list  # p per view, [B, D]; None entries without a predictor
  targets: list  # the target network's z per view, stop-gradient; [] without a target
  batch_stats: PyTree  # the online network's updated BatchNorm statistics
  target_stats: PyTree  # the target's updated statistics; None without a target


def apply_views(model: EncoderProjector, params: PyTree, batch_stats: PyTree,
                views: tuple[jax.Array, ...], *, target_params: PyTree = None,
                target_stats: PyTree = None) -> ViewOutputs:
  """Runs the online network (and, given `target_params`, the target) on each view in turn.

  The views go through one at a time, so BatchNorm normalises each view over the global batch
  and its running statistics are updated once per view, online then target, view after view.
  """
  projections, predictions, targets, features = [], [], [], None
  for view in views:
    (h, z, p), batch_stats = apply_train(model, params, batch_stats, view)
    projections.append(z)
    predictions.append(p)
    features = h if features is None else features
    if target_params is not None:
      t, target_stats = target_project(model, target_params, target_stats, view)
      targets.append(t)
  return ViewOutputs(features, projections, predictions, targets, batch_stats, target_stats)


def target_project(model: EncoderProjector, target_params: PyTree, target_stats: PyTree,
                   images: jax.Array) -> tuple[jax.Array, PyTree]:
  """A target network's projection of `images` in training mode (batch statistics, as BYOL's
  and MoCo's code do) with no gradient; returns (z [B, D], updated target batch_stats)."""
  (_, z), target_stats = apply_train(model, target_params, target_stats, images,
                                     method=EncoderProjector.project)
  return jax.lax.stop_gradient(z), target_stats


def target_subtree(tree: PyTree) -> PyTree:
  """The encoder + projector part of an EncoderProjector tree (what a target network holds)."""
  return {key: tree[key] for key in TARGET_KEYS if key in tree}


def encoder_with_maps(encoder: nn.Module, params, batch_stats, images: jax.Array,
                      blocks: Sequence[int] | None, field: str):
  """The encoder in training mode with some of its feature maps.

  Args:
    encoder: an image encoder that sows its maps (`jssl.models.resnet.feature_maps`).
    params, batch_stats: trees whose 'encoder' entries are the encoder's.
    images: [B, H, W, C] views.
    blocks: indices of the maps wanted (0 = the first block's, negative from the end); None:
      every map, in order.
    field: the config field that chose `blocks`, for the error.

  Returns:
    (h [B, F], the maps [B, M, M, C] in the order of `blocks`, the encoder's new batch_stats).

  Raises:
    ConfigError: an index past the encoder's maps.
  """
  h, updates = encoder.apply({'params': params['encoder'], 'batch_stats': batch_stats['encoder']},
                             images, train=True, mutable=['batch_stats', 'intermediates'])
  maps = feature_maps(updates['intermediates'])
  if blocks is None:
    return h, maps, updates['batch_stats']
  for block in blocks:
    if not -len(maps) <= block < len(maps):
      raise ConfigError(f'config.{field}={block} is not one of the encoder\'s {len(maps)} '
                        f'feature maps (0 .. {len(maps) - 1}, or -1 .. -{len(maps)}).')
  return h, tuple(maps[block] for block in blocks), updates['batch_stats']


def encoder_encode_fn(encoder: nn.Module):
  """`Method.encode` of a method whose params and batch_stats hold the image encoder's under
  'encoder' (Deep InfoMax, AMDIM): the frozen encoder in inference mode."""

  def encode(params, batch_stats, images):
    return encoder.apply({'params': params['encoder'], 'batch_stats': batch_stats['encoder']},
                         images, train=False)

  return encode


def encode_fn(model: EncoderProjector):
  """`Method.encode` of an EncoderProjector: the frozen encoder in inference mode."""

  def encode(params, batch_stats, images):
    return model.apply({'params': params, 'batch_stats': batch_stats}, images,
                       method=EncoderProjector.encode)

  return encode


def classification_loss(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Mean cross-entropy of integer labels and the accuracy, for pretext tasks that classify a
  transformation (RotNet's rotation, the jigsaw's permutation).

  Args:
    logits: [N, K].
    labels: [N] int32 in [0, K).

  Returns:
    (loss, accuracy), scalars.
  """
  value = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return value, jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def init_target(params: PyTree, batch_stats: PyTree) -> dict[str, PyTree]:
  """A target network's state at step 0: a copy of the online encoder + projector."""
  return {'params': target_subtree(params), 'batch_stats': target_subtree(batch_stats)}


def init_with_target_and_queue(model: nn.Module, rng: jax.Array, images: jax.Array,
                               queue_size: int, dim: int) -> tuple[PyTree, PyTree, PyTree]:
  """(params, batch_stats, extra) of an online network with an EMA target copy and a FIFO
  queue of `queue_size` random unit `dim`-vectors (MoCo's keys, Mean Shift's bank)."""
  model_rng, queue_rng = jax.random.split(rng)
  params, batch_stats = init_variables(model, model_rng, images)
  queue, pointer = memory.init_queue(queue_rng, queue_size, dim)
  extra = {'target': init_target(params, batch_stats), 'queue': queue, 'queue_pointer': pointer}
  return params, batch_stats, extra


def init_variables(model: nn.Module, rng: jax.Array, images: jax.Array) -> tuple[PyTree, PyTree]:
  """(params, batch_stats) of `model` initialised on `images` in training mode."""
  variables = model.init(rng, images, train=True)
  return variables['params'], variables.get('batch_stats', {})


def contrastive_loss(config: ml_collections.ConfigDict, section: str, *, dense: Callable,
                     blockwise: Callable, matrix: str) -> Callable:
  """The loss `config.<section>.loss_impl` picks: `dense`, or `blockwise` with
  `config.<section>.loss_block_size` (tiles of the similarity matrix; never the whole
  `matrix`). Fields absent from older configs default to 'dense' and 1024.

  Raises:
    ConfigError: an unknown `loss_impl` or a block size that is not a positive integer.
  """
  c = config[section]
  loss_impl = c.get('loss_impl', 'dense')
  if loss_impl not in ('dense', 'blockwise'):
    raise ConfigError(f'config.{section}.loss_impl={loss_impl!r} is unknown; choose one of '
                      f"['blockwise', 'dense'] (blockwise never builds the {matrix}).")
  block_size = c.get('loss_block_size', 1024)
  if (not isinstance(block_size, numbers.Integral) or isinstance(block_size, bool)
      or block_size < 1):
    raise ConfigError(f'config.{section}.loss_block_size={block_size!r} must be a positive '
                      'integer (rows and columns of one tile of the blockwise loss, e.g. 1024).')
  return dense if loss_impl == 'dense' else functools.partial(blockwise, block_size=block_size)


def stored_square_image(config: ml_collections.ConfigDict, info, method: str,
                        sizes) -> tuple[int, int]:
  """(side, channels) of the training images for a method that models the stored pixels (a
  VAE's decoder, a GAN's generator), whose networks make square images of a side in `sizes`.

  Raises:
    ConfigError: not an image dataset, views (`config.dataset.image_size`) of another size than
      the stored images, or images of an unsupported shape.
  """
  height, width, channels = stored_image_shape(config, info, method)
  if height != width or height not in sizes:
    raise ConfigError(f'{method}: its networks make square images of side {sorted(sizes)}; '
                      f'{config.dataset.name!r} stores {height}x{width}.')
  return height, channels


def stored_image_shape(config: ml_collections.ConfigDict, info, method: str) -> tuple[int, ...]:
  """(H, W, C) of the stored training images, for a likelihood model of exactly those pixels.

  Raises:
    ConfigError: not an image dataset, or views (`config.dataset.image_size`) of another size.
  """
  if info.dataset is None or info.dataset.modality != 'image':
    raise ConfigError(f'{method} models images; config.dataset.name={config.dataset.name!r} is '
                      'not an image dataset (use digits or fashion_mnist).')
  shape = tuple(info.dataset.image_shape)
  if config.dataset.image_size != shape[0]:
    raise ConfigError(f'{method} models the stored {shape[0]}x{shape[1]} pixels; set '
                      f'--config.dataset.image_size={shape[0]} (it is {config.dataset.image_size}).')
  return shape


def require_positive_ints(config: ml_collections.ConfigDict, section: str,
                          fields: tuple[str, ...]) -> None:
  """Raises ConfigError naming the first of `config.<section>.<field>` that is not an int >= 1."""
  for field in fields:
    value = config[section][field]
    if not isinstance(value, int) or value < 1:
      raise ConfigError(f'config.{section}.{field}={value!r} must be a positive integer.')


def init_encoder_decoder(encoder: nn.Module, decoder: nn.Module, rng: jax.Array, example,
                         image_shape: tuple[int, ...], latent_dim: int):
  """(params, batch_stats, extra) of an image encoder and a decoder from `latent_dim` codes
  (the VAE's and the autoencoders'): params {'encoder', 'decoder'}, the decoder's BatchNorm
  statistics, no extra state. `example` (or zeros of `image_shape`) sets the input shape."""
  encoder_rng, decoder_rng = jax.random.split(rng)
  x = jnp.zeros((2,) + tuple(image_shape), jnp.float32) if example is None else example
  encoder_vars = encoder.init(encoder_rng, x)
  decoder_vars = decoder.init(decoder_rng, jnp.zeros((2, latent_dim)), train=True)
  params = {'encoder': encoder_vars['params'], 'decoder': decoder_vars['params']}
  return params, {'decoder': decoder_vars['batch_stats']}, {}


EVAL_BINARIZE_SEED = 1234  # the one binarization of the test images every evaluation uses


def binarize(rng: jax.Array, images: jax.Array) -> jax.Array:
  """Dynamic binarization on the device (Salakhutdinov & Murray 2008): each pixel of uint8
  `images` [B, ...] is 1 with probability grey / 255, one key per example; float32 {0, 1}."""
  grey = images.astype(jnp.float32) / 255.0
  keys = jax.random.split(rng, grey.shape[0])
  return jax.vmap(lambda k, x: jax.random.bernoulli(k, x).astype(jnp.float32))(keys, grey)


def binarized_inputs(rng: jax.Array, batch: dict) -> dict:
  """A likelihood model's `Method.prepare`: {'x': `binarize`d images, 'label', 'index'}."""
  return {'x': binarize(rng, batch['image']), 'label': batch['label'], 'index': batch['index']}


def binarized_test_batches(source, count: int, batch_size: int):
  """The first `count` test images, binarized once with `EVAL_BINARIZE_SEED` (the same on every
  call, so every evaluation and every likelihood method scores the same binary images).

  Yields (start, grey float32 [batch_size, ...] in [0, 1], binary float32 {0, 1}) per batch;
  the last batch is padded by wrapping around, its rows from `count - start` on are padding.
  """
  rng = np.random.default_rng(EVAL_BINARIZE_SEED)
  for start in range(0, count, batch_size):
    indices = np.arange(start, start + batch_size) % count
    grey = source.get_batch(indices)['image'].astype(np.float32) / 255.0
    yield start, grey, (rng.random(grey.shape) < grey).astype(np.float32)


def write_samples(context, sample_fn, *args, columns: int = 8, scale: int = 4) -> None:
  """Writes `sample_fn(*args)` (images [N, H, W, C] in [0, 1]) to the workdir as
  samples_step<N>.png. The sampler is one program over the mesh, so every process runs it;
  process 0 writes. Nothing happens without a workdir (`context.workdir` None)."""
  if context.workdir is None:
    return
  samples = np.asarray(sample_fn(*args))
  if jax.process_index() == 0:
    image_files.save_grid(os.path.join(context.workdir, f'samples_step{context.step}.png'),
                          samples, columns=columns, scale=scale)


def write_reconstructions(context, rows) -> None:
  """Writes `rows` (equal-length image arrays [N, H, W, C] in [0, 1]: test images, then their
  corrupted or masked inputs, reconstructions, ...) as one grid, a row each, to the workdir as
  reconstructions_step<N>.png; process 0 only, nothing without a workdir."""
  if context.workdir is None or jax.process_index() != 0:
    return
  image_files.save_grid(os.path.join(context.workdir, f'reconstructions_step{context.step}.png'),
                        np.concatenate(list(rows)), columns=len(rows[0]), scale=4)
