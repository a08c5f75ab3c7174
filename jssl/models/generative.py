"""Image generators / decoders, a discriminator and a VAE encoder for small images.

For 8x8, 16x16, 28x28 and 32x32 images with any number of channels (1 or 3 in practice):

* `ConvGenerator` (DCGAN, Radford et al. 2016): ``z [B, Z]`` -> Dense to a start grid (7x7 for
  28x28, 4x4 for 8, 16 and 32) -> stride-2 transposed convolutions (kernel 4, 'SAME': each
  doubles the map) with BatchNorm + ReLU, halving the channels, -> the image, the last layer
  without BatchNorm and with the chosen output (tanh for a GAN on [-1, 1] images, sigmoid for
  [0, 1], raw logits for a VAE's Bernoulli decoder).

    32: 4x4x4w -> 8x8x2w -> 16x16xw -> 32x32xC      28: 7x7x2w -> 14x14xw -> 28x28xC
    16: 4x4x2w -> 8x8xw -> 16x16xC                    8: 4x4xw -> 8x8xC      (w = base_width)

* `ConvDiscriminator` (DCGAN): stride-2 convolutions (kernel 4, 'SAME') with LeakyReLU(0.2),
  doubling the channels, until the map is at most 7x7 (the generator's layers in reverse:
  32 -> 16 -> 8 -> 4, 28 -> 14 -> 7, 16 -> 8 -> 4, 8 -> 4); no normalisation on the first layer;
  then flatten and a Dense to one logit. It also returns the flattened last hidden activation,
  a representation a linear or kNN probe can read.
* `ConvEncoder`: a VAE's inference network, the same stride-2 convolutions with ReLU, then two
  Dense heads for the posterior mean and log-variance. It has no BatchNorm, so the posterior of
  one example never depends on the rest of its batch (it would under batch statistics, making
  the ELBO of an example a function of the batch it was evaluated with).

The models take images in whatever range the method uses (e.g. [-1, 1] to match a tanh
generator, [0, 1] for a Bernoulli decoder); they do no normalisation of their own.

Parameters are float32; ``dtype`` is the computation dtype; outputs are float32. BatchNorm
(momentum 0.9, eps 1e-5, as the encoders) has no ``axis_name``: under ``jit`` over sharded
global arrays its statistics are over the global batch. Generator and discriminator kernels are
N(0, 0.02) as in DCGAN (BatchNorm scale one, bias zero); the encoder's convolutions He-normal.
Kernels are drawn as a flat vector and reshaped (see `jssl.models.resnet.conv_kernel_init`):
XLA:CPU compiles rank-1 threefry far faster than rank 4.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jssl.models.resnet import conv_kernel_init

# Image size -> side of the generator's start grid; the number of doublings follows.
START_SIZES = {8: 4, 16: 4, 28: 7, 32: 4}
OUTPUTS = ('tanh', 'sigmoid', 'logits')
NORMS = ('batch', 'layer', 'none')


def dcgan_normal(key, shape, dtype=jnp.float32):
  """DCGAN's N(0, 0.02) initialisation, drawn flat and reshaped (fast to compile on CPU)."""
  return (0.02 * jax.random.normal(key, (math.prod(shape),), dtype)).reshape(shape)


def num_upsamplings(image_size: int) -> int:
  """How many stride-2 layers take the start grid to ``image_size`` (raises if unsupported)."""
  if image_size not in START_SIZES:
    raise ValueError(f'Unsupported image size {image_size!r} for ConvGenerator; supported '
                     f'sizes are {sorted(START_SIZES)} (square images).')
  return int(math.log2(image_size // START_SIZES[image_size]))


def _num_downsamplings(height: int, width: int) -> int:
  """Stride-2 'SAME' convolutions (ceil halving) until the map is at most 7x7, at least one."""
  count, side = 0, max(height, width)
  while count == 0 or side > 7:
    side, count = -(-side // 2), count + 1
  return count


def _batch_norm(train: bool, dtype, name: str) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                      param_dtype=jnp.float32, name=name)


class ConvGenerator(nn.Module):
  """DCGAN generator / convolutional decoder: ``z [B, Z] -> images [B, S, S, channels]``.

  Attributes:
    image_size: S, one of 8, 16, 28, 32.
    channels: output channels C (1 grayscale, 3 RGB).
    base_width: channels of the last hidden layer; each earlier layer has twice as many.
    output: 'tanh' (images in [-1, 1]), 'sigmoid' ([0, 1]) or 'logits' (Bernoulli logits).
    dtype: computation dtype; params and the output are float32.
  """
  image_size: int
  channels: int
  base_width: int = 64
  output: str = 'tanh'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, *, train: bool):
    """Generates images.

    Args:
      z: latent codes ``[B, Z]``.
      train: use batch statistics in BatchNorm and update the running averages (the
        ``batch_stats`` collection must then be mutable); otherwise use the running averages.

    Returns:
      float32 ``[B, image_size, image_size, channels]``, in the range ``output`` implies.

    Raises:
      ValueError: for an unsupported image size or output, or a non-positive width.
    """
    ups = num_upsamplings(self.image_size)
    if self.output not in OUTPUTS:
      raise ValueError(f'Unknown generator output {self.output!r}; valid outputs are '
                       f'{list(OUTPUTS)}.')
    for field in ('channels', 'base_width'):
      if not isinstance(getattr(self, field), int) or getattr(self, field) < 1:
        raise ValueError(f'ConvGenerator {field} must be a positive int, got '
                         f'{getattr(self, field)!r}.')
    if z.ndim != 2:
      raise ValueError(f'ConvGenerator expects latents [batch, latent_dim], got shape {z.shape}.')
    start = START_SIZES[self.image_size]
    width = self.base_width * 2**(ups - 1)
    x = nn.Dense(start * start * width, use_bias=False, dtype=self.dtype,
                 param_dtype=jnp.float32, kernel_init=dcgan_normal, name='project')(
                     jnp.asarray(z).astype(self.dtype))
    x = x.reshape(z.shape[0], start, start, width)
    x = nn.relu(_batch_norm(train, self.dtype, 'bn_project')(x))
    for i in range(ups - 1):
      width //= 2
      x = nn.ConvTranspose(width, (4, 4), strides=(2, 2), padding='SAME', use_bias=False,
                           dtype=self.dtype, param_dtype=jnp.float32, kernel_init=dcgan_normal,
                           name=f'deconv_{i}')(x)
      x = nn.relu(_batch_norm(train, self.dtype, f'bn_{i}')(x))
    x = nn.ConvTranspose(self.channels, (4, 4), strides=(2, 2), padding='SAME',
                         dtype=self.dtype, param_dtype=jnp.float32, kernel_init=dcgan_normal,
                         name='deconv_out')(x)
    x = x.astype(jnp.float32)
    if self.output == 'tanh':
      return jnp.tanh(x)
    if self.output == 'sigmoid':
      return jax.nn.sigmoid(x)
    return x


class ConvDiscriminator(nn.Module):
  """DCGAN discriminator: ``images [B, H, W, C] -> (logits [B], features [B, F])``.

  Layer i has ``base_width * 2**i`` channels; the number of layers follows the image size (see
  the module docstring). ``F = h * w * base_width * 2**(n - 1)`` for the final ``h x w`` map of
  the n-th layer, e.g. 4 * 4 * 4 w for 32x32 and 7 * 7 * 2 w for 28x28.

  Attributes:
    base_width: channels of the first convolution.
    norm: normalisation after every convolution but the first: 'batch' (DCGAN), 'layer'
      (LayerNorm over each example's whole map with a per-channel scale and bias, as WGAN-GP's
      critic, whose gradient penalty must not mix examples) or 'none'.
    spectral_norm: divide every kernel (the convolutions' and the logit's) by its largest
      singular value (Miyato et al. 2018), estimated by one power iteration per training
      call with the vector u kept in `batch_stats` (``flax.linen.SpectralNorm``; `train`
      updates it). The parameters keep their names; u and the estimate sigma are in
      `batch_stats` under ``sn_<layer>``.
    dtype: computation dtype; params and outputs are float32.
  """
  base_width: int = 64
  norm: str = 'batch'
  spectral_norm: bool = False
  dtype: Any = jnp.float32

  def _layer(self, layer: nn.Module, x, train: bool):
    if not self.spectral_norm:
      return layer(x)
    return nn.SpectralNorm(layer, name=f'sn_{layer.name}')(x, update_stats=train)

  def features_dim_for(self, height: int, width: int | None = None) -> int:
    """F for ``height x width`` images (square if ``width`` is None), without building params."""
    width = height if width is None else width
    layers = _num_downsamplings(height, width)
    side_h, side_w = height, width
    for _ in range(layers):
      side_h, side_w = -(-side_h // 2), -(-side_w // 2)
    return side_h * side_w * self.base_width * 2**(layers - 1)

  @nn.compact
  def __call__(self, images, *, train: bool):
    """Scores images.

    Args:
      images: ``[B, H, W, C]``, float, in the range the generator produces.
      train: BatchNorm (``norm='batch'``) uses batch statistics and updates the running
        averages (``batch_stats`` must then be mutable); otherwise the running averages.

    Returns:
      ``(logits, features)``: float32 ``[B]`` real-vs-fake logits and float32 ``[B, F]``, the
      flattened last hidden activation.
    """
    if self.norm not in NORMS:
      raise ValueError(f'Unknown discriminator norm {self.norm!r}; valid norms are '
                       f'{list(NORMS)}.')
    if images.ndim != 4:
      raise ValueError(f'ConvDiscriminator expects images [batch, height, width, channels], '
                       f'got shape {images.shape}.')
    x = jnp.asarray(images).astype(self.dtype)
    for i in range(_num_downsamplings(images.shape[1], images.shape[2])):
      normed = i > 0 and self.norm != 'none'
      x = self._layer(nn.Conv(self.base_width * 2**i, (4, 4), strides=(2, 2), padding='SAME',
                              use_bias=not normed, dtype=self.dtype, param_dtype=jnp.float32,
                              kernel_init=dcgan_normal, name=f'conv_{i}'), x, train)
      if normed and self.norm == 'batch':
        x = _batch_norm(train, self.dtype, f'bn_{i}')(x)
      elif normed:
        x = nn.LayerNorm(epsilon=1e-5, reduction_axes=(1, 2, 3), feature_axes=-1,
                         dtype=self.dtype, param_dtype=jnp.float32, name=f'ln_{i}')(x)
      x = nn.leaky_relu(x, negative_slope=0.2)
    features = x.reshape(x.shape[0], -1)
    logits = self._layer(nn.Dense(1, dtype=self.dtype, param_dtype=jnp.float32,
                                  kernel_init=dcgan_normal, name='logit'), features, train)
    return logits[:, 0].astype(jnp.float32), features.astype(jnp.float32)


class ConvEncoder(nn.Module):
  """VAE encoder: ``images [B, H, W, C] -> (mean [B, Z], log_var [B, Z])``, no BatchNorm;
  with ``deterministic=True`` an autoencoder's: ``images -> code [B, Z]``.

  Stride-2 convolutions (kernel 4, 'SAME', ReLU, ``base_width * 2**i`` channels) until the map
  is at most 7x7, flatten, then two Dense heads (one, 'code', when deterministic). Without
  BatchNorm each example's code is a function of that example alone, in training and
  evaluation.

  Attributes:
    latent_dim: Z.
    base_width: channels of the first convolution.
    deterministic: one linear code instead of a Gaussian's mean and log-variance.
    dtype: computation dtype; params and outputs are float32.
  """
  latent_dim: int
  base_width: int = 32
  deterministic: bool = False
  dtype: Any = jnp.float32

  @property
  def features_dim(self) -> int:
    """Z: the posterior mean is the representation a probe reads."""
    return self.latent_dim

  @nn.compact
  def __call__(self, images, *, train: bool = False):
    """Encodes images into a diagonal Gaussian posterior.

    Args:
      images: ``[B, H, W, C]`` float.
      train: unused (no BatchNorm or dropout); accepted for the encoders' common signature.

    Returns:
      ``(mean, log_var)``, float32 ``[B, latent_dim]`` each; deterministic: the code, float32
      ``[B, latent_dim]``.
    """
    del train
    if images.ndim != 4:
      raise ValueError(f'ConvEncoder expects images [batch, height, width, channels], got '
                       f'shape {images.shape}.')
    x = jnp.asarray(images).astype(self.dtype)
    for i in range(_num_downsamplings(images.shape[1], images.shape[2])):
      x = nn.Conv(self.base_width * 2**i, (4, 4), strides=(2, 2), padding='SAME',
                  dtype=self.dtype, param_dtype=jnp.float32, kernel_init=conv_kernel_init,
                  name=f'conv_{i}')(x)
      x = nn.relu(x)
    x = x.reshape(x.shape[0], -1)

    def head(name):
      return nn.Dense(self.latent_dim, dtype=self.dtype, param_dtype=jnp.float32,
                      name=name)(x).astype(jnp.float32)

    if self.deterministic:
      return head('code')
    return head('mean'), head('log_var')
