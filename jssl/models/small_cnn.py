"""A small convolutional encoder for tiny images (8x8 digits, 16x16, 28x28 Fashion-MNIST).

It is the model of the CPU demo: a few ``3x3 conv -> BatchNorm -> ReLU`` blocks with a 2x2
max-pool between blocks while the feature map is at least 4x4, then global average pooling.
Default widths ``(32, 64, 128)``:

  16x16xC -> [conv 32] 16x16 -> pool 8x8 -> [conv 64] 8x8 -> pool 4x4 -> [conv 128] 4x4 -> GAP 128
  28x28xC -> 28 -> 14 -> 7 -> 128;   8x8xC -> 8 -> 4 -> 2 -> 128.

Pooling *before* each later convolution keeps the cost low: most FLOPs are spent at a quarter of
the input resolution.

BatchNorm has no ``axis_name``: the training step is ``jax.jit`` over global arrays sharded with
``NamedSharding``, so batch statistics are over the global batch. Parameters are float32; ``dtype``
is the computation dtype; the representation is returned in float32. Convolutions have no bias
(BatchNorm follows), so every ``kernel`` leaf is a weight and every ``scale``/``bias`` leaf
belongs to a ``bn_*`` module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jssl.models.resnet import FEATURE_MAPS, conv_kernel_init, normalize_images

DEFAULT_WIDTHS = (32, 64, 128)


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max-pool with stride 2 (VALID: an odd last row or column is dropped).

  The same outputs as ``nn.max_pool(x, (2, 2), strides=(2, 2))`` and the same gradient: each
  window's gradient goes to its first maximum in row-major order, as XLA's select-and-scatter
  (with ``ge``) gives it. Written as three element-wise selects between the four window
  positions because the gradient of ``reduce_window`` max is a select-and-scatter, which
  XLA:CPU runs some 20x slower than these selects' gradients (~0.3 s of a 1 s Fashion-MNIST
  step on 2 cores; experiments/BENCHMARKS.md).

  Args:
    x: ``[B, H, W, C]`` with H, W >= 2.

  Returns:
    ``[B, H // 2, W // 2, C]``.
  """
  batch, height, width, channels = x.shape
  h, w = height // 2, width // 2
  windows = x[:, :2 * h, :2 * w].reshape(batch, h, 2, w, 2, channels)
  top_left, top_right = windows[:, :, 0, :, 0], windows[:, :, 0, :, 1]
  bottom_left, bottom_right = windows[:, :, 1, :, 0], windows[:, :, 1, :, 1]
  # `where(b > a, b, a)` keeps the earlier element on ties, so the gradient reaches it alone.
  top = jnp.where(top_right > top_left, top_right, top_left)
  bottom = jnp.where(bottom_right > bottom_left, bottom_right, bottom_left)
  return jnp.where(bottom > top, bottom, top)


class Conv3x3AsMatmul(nn.Module):
  """``nn.Conv(features, (3, 3), padding=1, use_bias=False)`` computed as one matmul.

  The nine shifted copies of the zero-padded input are concatenated along channels ("im2col")
  and multiplied by the kernel reshaped to ``[9 C, features]``: the same sums as the
  convolution, in another order. The parameter is the same ``kernel`` ``[3, 3, C, features]``
  as ``nn.Conv``'s, so checkpoints and weight decay do not see the difference. XLA:CPU's
  convolutions are slow where there are very few input channels (the image) or very few
  positions (the last, <= 4x4 block); there the matmul is faster, forward and backward
  (experiments/BENCHMARKS.md).

  Attributes:
    features: output channels.
    dtype: computation dtype; the kernel is float32.
  """
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    """``[B, H, W, C] -> [B, H, W, features]``."""
    batch, height, width, channels = x.shape
    kernel = self.param('kernel', conv_kernel_init, (3, 3, channels, self.features),
                        jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    # Channel order (dy, dx, c) matches the kernel's row-major [3, 3, C] flattening.
    patches = jnp.concatenate([padded[:, dy:dy + height, dx:dx + width]
                               for dy in range(3) for dx in range(3)], axis=-1)
    y = patches.reshape(-1, 9 * channels) @ kernel.reshape(9 * channels, self.features)
    return y.reshape(batch, height, width, self.features)


def _conv_as_matmul(in_channels: int, height: int, width: int) -> bool:
  """Where `Conv3x3AsMatmul` beats XLA:CPU's convolution: image input or a tiny map."""
  return in_channels <= 3 or height * width <= 16


class SmallCNN(nn.Module):
  """Small CNN encoder: ``[B, H, W, C]`` images -> ``[B, widths[-1]]`` representation.

  Attributes:
    widths: output channels of each ``3x3 conv -> BN -> ReLU`` block.
    dtype: computation dtype (``jnp.float32`` or ``jnp.bfloat16``); params are float32.
    matmul_convs: compute the first convolution (image input) and those on maps of at most
      4x4 as one matmul (`Conv3x3AsMatmul`): ~20% faster steps on XLA:CPU, the same
      parameters, outputs equal up to float rounding. Off by default so that runs keep
      reproducing the published numbers to the last digit.
    mean: input mean subtracted inside the model, a float or per-channel sequence.
    std: input std divided by inside the model, a float or per-channel sequence.
  """
  widths: Sequence[int] = DEFAULT_WIDTHS
  dtype: Any = jnp.float32
  matmul_convs: bool = False
  mean: Any = 0.5
  std: Any = 0.25

  @property
  def features_dim(self) -> int:
    """F, the size of the representation ``__call__`` returns."""
    return self.widths[-1]

  @nn.compact
  def __call__(self, x, train: bool):
    """Encodes images.

    Args:
      x: images ``[B, H, W, C]``, float in [0, 1], C = 1 or 3, H and W at least 1.
      train: use batch statistics in BatchNorm and update the running averages (the
        ``batch_stats`` collection must then be mutable); otherwise use the running averages.

    Returns:
      The representation ``[B, widths[-1]]``, float32.
    """
    if not self.widths:
      raise ValueError('SmallCNN needs at least one width, e.g. widths=(32, 64, 128).')
    x = normalize_images(x, self.mean, self.std, self.dtype)
    for i, width in enumerate(self.widths):
      # Halve the resolution between blocks while that leaves at least 2x2.
      if i > 0 and min(x.shape[1], x.shape[2]) >= 4:
        x = max_pool_2x2(x)
      if self.matmul_convs and _conv_as_matmul(x.shape[-1], x.shape[1], x.shape[2]):
        x = Conv3x3AsMatmul(width, dtype=self.dtype, name=f'conv_{i}')(x)
      else:
        x = nn.Conv(
            width, (3, 3),
            padding=((1, 1), (1, 1)),
            use_bias=False,
            kernel_init=conv_kernel_init,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name=f'conv_{i}')(x)
      x = nn.BatchNorm(
          use_running_average=not train,
          momentum=0.9,
          epsilon=1e-5,
          dtype=self.dtype,
          param_dtype=jnp.float32,
          name=f'bn_{i}')(x)
      x = nn.relu(x)
      # Each block's map, kept only when 'intermediates' is mutable (`resnet.feature_maps`).
      self.sow('intermediates', FEATURE_MAPS, x)
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))
