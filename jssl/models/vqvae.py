"""VQ-VAE's encoder and decoder (van den Oord, Vinyals & Kavukcuoglu, NeurIPS 2017), small.

The paper's networks, scaled to 8x8 and 28x28 images: the encoder is `downsamplings` stride-2
convolutions (kernel 4, 'SAME', ReLU), a 3x3 convolution, `num_residual` residual blocks
(ReLU, 3x3 conv, ReLU, 1x1 conv) and a 1x1 convolution to the code size D, so an HxW image
becomes a grid of (H / 2^n) x (W / 2^n) vectors that the quantiser replaces by codes. The decoder
mirrors it: a 3x3 convolution from D, the residual blocks, `downsamplings` stride-2 transposed
convolutions and per-pixel logits. No BatchNorm: an example's codes depend on it alone.

    digits 8x8, n = 1:   8x8x1 -> 4x4xw -> 4x4xD (16 codes) -> 8x8x1 logits
    Fashion-MNIST, n = 2: 28x28x1 -> 14x14xw -> 7x7xw -> 7x7xD (49 codes) -> 28x28x1 logits
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jssl.models.resnet import conv_kernel_init


class _Residual(nn.Module):
  width: int

  @nn.compact
  def __call__(self, x):
    y = nn.Conv(self.width, (3, 3), kernel_init=conv_kernel_init, name='conv_3x3')(nn.relu(x))
    y = nn.Conv(x.shape[-1], (1, 1), kernel_init=conv_kernel_init, name='conv_1x1')(nn.relu(y))
    return x + y


class VQEncoder(nn.Module):
  """``images [B, H, W, C] -> z_e [B, H / 2^n, W / 2^n, code_dim]`` (float32).

  Attributes:
    code_dim: D, the size of every code vector.
    width: channels of the convolutions.
    downsamplings: n, the stride-2 convolutions.
    num_residual: residual blocks after them.
  """
  code_dim: int
  width: int = 32
  downsamplings: int = 1
  num_residual: int = 2

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    if images.ndim != 4:
      raise ValueError(f'VQEncoder expects images [batch, height, width, channels], got '
                       f'shape {images.shape}.')
    x = images.astype(jnp.float32)
    for i in range(self.downsamplings):
      x = nn.relu(nn.Conv(self.width, (4, 4), strides=(2, 2), padding='SAME',
                          kernel_init=conv_kernel_init, name=f'down_{i}')(x))
    x = nn.Conv(self.width, (3, 3), kernel_init=conv_kernel_init, name='conv_in')(x)
    for i in range(self.num_residual):
      x = _Residual(self.width, name=f'residual_{i}')(x)
    return nn.Conv(self.code_dim, (1, 1), kernel_init=conv_kernel_init,
                   name='to_codes')(nn.relu(x))


class VQDecoder(nn.Module):
  """``codes [B, h, w, D] -> logits [B, h * 2^n, w * 2^n, channels]`` (float32).

  Attributes:
    channels: of the images.
    width: channels of the convolutions.
    downsamplings: n, the stride-2 transposed convolutions (the encoder's).
    num_residual: residual blocks before them.
  """
  channels: int = 1
  width: int = 32
  downsamplings: int = 1
  num_residual: int = 2

  @nn.compact
  def __call__(self, codes: jax.Array) -> jax.Array:
    x = nn.Conv(self.width, (3, 3), kernel_init=conv_kernel_init,
                name='conv_in')(codes.astype(jnp.float32))
    for i in range(self.num_residual):
      x = _Residual(self.width, name=f'residual_{i}')(x)
    for i in range(self.downsamplings):
      x = nn.ConvTranspose(self.width, (4, 4), strides=(2, 2), padding='SAME',
                           kernel_init=conv_kernel_init, name=f'up_{i}')(nn.relu(x))
    return nn.Conv(self.channels, (3, 3), kernel_init=conv_kernel_init,
                   name='to_logits')(nn.relu(x))
