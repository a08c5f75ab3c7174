"""ResNet encoders (He et al., 2016), torchvision v1.5 layout, without the classifier.

The encoder maps images ``[B, H, W, C]`` in [0, 1] to the globally average-pooled representation
``[B, F]``; heads and linear probes are separate modules.

BatchNorm has no ``axis_name`` on purpose: the training step is ``jax.jit`` over global arrays
sharded with ``NamedSharding`` on a ``('data',)`` mesh, so the batch mean and variance BN computes
are already over the *global* batch (XLA inserts the cross-device reductions). Naming an axis would
only make sense inside ``shard_map``; under plain ``jit`` it would fail.

Parameters are always float32 (``param_dtype``); ``dtype`` is the computation dtype (float32 or
bfloat16). BatchNorm statistics are reduced in float32 either way, and the returned representation
is cast to float32.

Naming, relied on by ``jssl.models.weight_decay_mask``: convolution weights are leaves called
``kernel`` (convs have no bias, as in torchvision), BatchNorm modules are called ``bn*`` and hold
``scale``/``bias``; running statistics live in the separate ``batch_stats`` collection.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def conv_kernel_init(key, shape, dtype=jnp.float32):
  """He-normal (fan_out) conv init, as torchvision's ``kaiming_normal_(mode='fan_out')``.

  Same distribution as ``nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')``, but drawn
  as a flat vector and reshaped: XLA:CPU takes seconds to compile threefry for each distinct
  rank-4 shape and well under a second for rank 1, which dominates init time in tests and demos.

  Args:
    key: a PRNG key.
    shape: kernel shape ``[*window, C_in, C_out]``.
    dtype: dtype of the returned kernel.

  Returns:
    A kernel of ``shape`` with i.i.d. N(0, 2 / fan_out) entries, fan_out = prod(window) * C_out.
  """
  fan_out = math.prod(shape[:-2]) * shape[-1]
  std = math.sqrt(2.0 / fan_out)
  return (std * jax.random.normal(key, (math.prod(shape),), dtype)).reshape(shape)


STEMS = ('cifar', 'imagenet')


def normalize_images(x, mean, std, dtype):
  """Maps images in [0, 1] to roughly zero mean, unit variance, in the computation dtype.

  Args:
    x: images ``[B, H, W, C]`` in [0, 1].
    mean: a float or a per-channel sequence of length C.
    std: a float or a per-channel sequence of length C.
    dtype: the computation dtype of the result.

  Returns:
    ``(x - mean) / std`` as ``[B, H, W, C]`` in ``dtype`` (computed in float32).
  """
  x = jnp.asarray(x, jnp.float32)
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  return ((x - mean) / std).astype(dtype)


def _conv(features, kernel_size, strides, padding, dtype, name):
  return nn.Conv(
      features,
      (kernel_size, kernel_size),
      strides=(strides, strides),
      padding=((padding, padding), (padding, padding)),
      use_bias=False,
      kernel_init=conv_kernel_init,
      dtype=dtype,
      param_dtype=jnp.float32,
      name=name)


def _batch_norm(train, dtype, name, zero_scale=False):
  return nn.BatchNorm(
      use_running_average=not train,
      momentum=0.9,
      epsilon=1e-5,
      dtype=dtype,
      param_dtype=jnp.float32,
      scale_init=nn.initializers.zeros if zero_scale else nn.initializers.ones,
      name=name)


def _add_residual(y, x, strides, train, dtype):
  """relu(y + shortcut(x)); the shortcut projects (1x1 conv + BN) when the shape changes."""
  if strides != 1 or x.shape[-1] != y.shape[-1]:
    x = _conv(y.shape[-1], 1, strides, 0, dtype, 'downsample_conv')(x)
    x = _batch_norm(train, dtype, 'downsample_bn')(x)
  return nn.relu(y + x)


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with a residual connection (ResNet-18/34).

  Attributes:
    filters: output channels of both convolutions.
    strides: stride of the first convolution (and of the projection shortcut).
    zero_init_residual: initialise the last BN scale to zero, so the block starts as identity.
    dtype: computation dtype.
  """
  filters: int
  strides: int = 1
  zero_init_residual: bool = True
  dtype: Any = jnp.float32

  expansion = 1

  @nn.compact
  def __call__(self, x, train: bool):
    """Applies the block: ``[B, H, W, C_in] -> [B, H / strides, W / strides, filters]``."""
    y = _conv(self.filters, 3, self.strides, 1, self.dtype, 'conv1')(x)
    y = _batch_norm(train, self.dtype, 'bn1')(y)
    y = nn.relu(y)
    y = _conv(self.filters, 3, 1, 1, self.dtype, 'conv2')(y)
    y = _batch_norm(train, self.dtype, 'bn2', zero_scale=self.zero_init_residual)(y)
    return _add_residual(y, x, self.strides, train, self.dtype)


class Bottleneck(nn.Module):
  """1x1 -> 3x3 -> 1x1 convolutions with a residual connection (ResNet-50 and deeper).

  As torchvision's v1.5, the stride sits on the 3x3 convolution, not the first 1x1.

  Attributes:
    filters: channels of the inner convolutions; the block outputs ``4 * filters`` channels.
    strides: stride of the 3x3 convolution (and of the projection shortcut).
    zero_init_residual: initialise the last BN scale to zero, so the block starts as identity.
    dtype: computation dtype.
  """
  filters: int
  strides: int = 1
  zero_init_residual: bool = True
  dtype: Any = jnp.float32

  expansion = 4

  @nn.compact
  def __call__(self, x, train: bool):
    """Applies the block: ``[B, H, W, C_in] -> [B, H / strides, W / strides, 4 * filters]``."""
    out_features = self.filters * self.expansion
    y = _conv(self.filters, 1, 1, 0, self.dtype, 'conv1')(x)
    y = _batch_norm(train, self.dtype, 'bn1')(y)
    y = nn.relu(y)
    y = _conv(self.filters, 3, self.strides, 1, self.dtype, 'conv2')(y)
    y = _batch_norm(train, self.dtype, 'bn2')(y)
    y = nn.relu(y)
    y = _conv(out_features, 1, 1, 0, self.dtype, 'conv3')(y)
    y = _batch_norm(train, self.dtype, 'bn3', zero_scale=self.zero_init_residual)(y)
    return _add_residual(y, x, self.strides, train, self.dtype)


class ResNet(nn.Module):
  """ResNet encoder without the classifier.

  Attributes:
    stage_sizes: number of blocks in each stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18; stage i has
      width ``64 * width_multiplier * 2**i`` and all but the first halve the resolution.
    block_cls: ``BasicBlock`` or ``Bottleneck``.
    stem: ``'imagenet'`` (7x7 stride-2 conv + 3x3 stride-2 max-pool) or ``'cifar'`` (3x3 stride-1
      conv, no max-pool) for small images.
    width_multiplier: multiplies every width, the stem's included (SimCLR's ResNet-50 (2x), ...).
    zero_init_residual: zero-init the last BN scale of each residual block (Goyal et al., 2017).
    dtype: computation dtype (``jnp.float32`` or ``jnp.bfloat16``); params are float32.
    mean: input mean subtracted inside the model, a float or per-channel sequence.
    std: input std divided by inside the model, a float or per-channel sequence.
  """
  stage_sizes: Sequence[int]
  block_cls: Any
  stem: str = 'cifar'
  width_multiplier: int = 1
  zero_init_residual: bool = True
  dtype: Any = jnp.float32
  mean: Any = 0.5
  std: Any = 0.25

  @property
  def features_dim(self) -> int:
    """F, the size of the representation ``__call__`` returns."""
    last_stage_width = 64 * self.width_multiplier * 2**(len(self.stage_sizes) - 1)
    return last_stage_width * self.block_cls.expansion

  @nn.compact
  def __call__(self, x, train: bool):
    """Encodes images.

    Args:
      x: images ``[B, H, W, C]``, float in [0, 1], C = 1 or 3.
      train: use batch statistics in BatchNorm and update the running averages (the
        ``batch_stats`` collection must then be mutable); otherwise use the running averages.

    Returns:
      The representation ``[B, features_dim]``, float32.
    """
    if self.stem not in STEMS:
      raise ValueError(f'Unknown ResNet stem {self.stem!r}; valid stems are {list(STEMS)}.')
    width = 64 * self.width_multiplier
    x = normalize_images(x, self.mean, self.std, self.dtype)
    if self.stem == 'imagenet':
      x = _conv(width, 7, 2, 3, self.dtype, 'conv_stem')(x)
    else:
      x = _conv(width, 3, 1, 1, self.dtype, 'conv_stem')(x)
    x = _batch_norm(train, self.dtype, 'bn_stem')(x)
    x = nn.relu(x)
    if self.stem == 'imagenet':
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for stage, num_blocks in enumerate(self.stage_sizes):
      for block in range(num_blocks):
        x = self.block_cls(
            filters=width * 2**stage,
            strides=2 if stage > 0 and block == 0 else 1,
            zero_init_residual=self.zero_init_residual,
            dtype=self.dtype,
            name=f'stage{stage + 1}_block{block + 1}')(x, train)
      # Each stage's feature map, kept only when 'intermediates' is mutable (Deep InfoMax's
      # local features; see `feature_maps`).
      self.sow('intermediates', FEATURE_MAPS, x)
    x = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
    return x


FEATURE_MAPS = 'feature_maps'


def feature_maps(intermediates) -> tuple:
  """The feature maps an encoder sowed (a `SmallCNN`'s blocks or a `ResNet`'s stages, in
  order, each [B, H, W, C]) from the 'intermediates' collection of an `apply` with
  ``mutable=['intermediates', ...]``."""
  return tuple(intermediates[FEATURE_MAPS])


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block_cls=BasicBlock)
ResNet34 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BasicBlock)
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=Bottleneck)
