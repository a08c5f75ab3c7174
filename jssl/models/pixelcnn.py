"""Gated PixelCNN (van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu, NeurIPS
2016): an autoregressive image model, p(x) = prod over pixels in raster order of
p(x_ij | x_<ij), with no blind spot.

Two stacks of convolutions. The *vertical* stack sees every pixel in the rows above: a
(k//2 + 1) x k convolution over the input padded with k//2 rows on top (so output row i covers
rows i - k//2 .. i), whose output is shifted down by one row before it feeds the horizontal
stack (so that there it covers only rows < i). The *horizontal* stack sees the pixels to the
left in the same row: a 1 x (k//2 + 1) convolution padded on the left, excluding the current
pixel in the first layer (mask type A, with the input itself) and including it afterwards (type
B, where the current position holds features of pixels before it). Each layer is gated,
tanh(a) * sigmoid(b); the horizontal stack is residual after the first layer. The
receptive field of output (i, j) is every pixel above it within the stacks' growing width and
every pixel to its left: the original PixelCNN's masked 3x3 convolutions missed the pixels
up and to the right (the blind spot), these two stacks do not.

Channels: one (grey) channel is modelled; C > 1 channels would also need the masks across
colour channels of the paper, which are not implemented (the module refuses them).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def _gate(x: jax.Array) -> jax.Array:
  a, b = jnp.split(x, 2, axis=-1)
  return jnp.tanh(a) * jax.nn.sigmoid(b)


def _shift_down(x: jax.Array) -> jax.Array:
  """Row i gets row i - 1 (zeros in row 0): [B, H, W, F]."""
  return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


def _shift_right(x: jax.Array) -> jax.Array:
  """Column j gets column j - 1 (zeros in column 0): [B, H, W, F]."""
  return jnp.pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]


class GatedLayer(nn.Module):
  """One gated layer of both stacks: ``(v, h) -> (v', h')``, each [B, H, W, F].

  Attributes:
    features: F.
    kernel_size: k (odd).
    first: mask type A (the horizontal stack excludes the current pixel; no residual).
  """
  features: int
  kernel_size: int = 3
  first: bool = False

  @nn.compact
  def __call__(self, v: jax.Array, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    k, f = self.kernel_size, self.features
    half = k // 2
    # Vertical: output row i sees rows i - half .. i of v (its own row included: that is
    # v's rows above the pixels the horizontal stack will predict once shifted down).
    v_padded = jnp.pad(v, ((0, 0), (half, 0), (half, half), (0, 0)))
    v_conv = nn.Conv(2 * f, (half + 1, k), padding='VALID', name='vertical')(v_padded)
    # Horizontal: output column j sees columns j - half .. j of h (type A: of the input,
    # shifted right so the current pixel is excluded).
    h_in = _shift_right(h) if self.first else h
    h_padded = jnp.pad(h_in, ((0, 0), (0, 0), (half, 0), (0, 0)))
    h_conv = nn.Conv(2 * f, (1, half + 1), padding='VALID', name='horizontal')(h_padded)
    # The vertical stack's view of the rows strictly above, into the horizontal stack.
    h_conv = h_conv + nn.Conv(2 * f, (1, 1), name='vertical_to_horizontal')(_shift_down(v_conv))
    v_out = _gate(v_conv)
    h_out = nn.Conv(f, (1, 1), name='horizontal_out')(_gate(h_conv))
    if not self.first:
      h_out = h_out + h
    return v_out, h_out


class GatedPixelCNN(nn.Module):
  """``images [B, H, W, 1] in [0, 1] -> (logits [B, H, W, 1, levels], features [B, F])``
  (or integer grids [B, H, W] with `embed_inputs`).

  The first layer has a k_first x k_first receptive footprint (type A), the others k x k
  (type B); two 1x1 ReLU layers map the horizontal stack to per-pixel logits over `levels`
  values. `features` is the mean over positions of the last horizontal stack, the
  representation a probe reads.

  Attributes:
    levels: values per pixel (2 for binarized images, 256 for 8-bit ones).
    features: F, channels of both stacks.
    num_layers: gated layers (the first is type A).
    kernel_size: k of the type-B layers.
    first_kernel_size: k of the type-A layer (7 in the paper).
    embed_inputs: the input is a grid of integer values in [0, levels) [B, H, W] (e.g. the
      codes of a VQ-VAE, whose prior this then is), embedded in `features` channels; the
      type-A first layer hides each position's whole embedding from its own prediction.
  """
  levels: int = 2
  features: int = 32
  num_layers: int = 6
  kernel_size: int = 3
  first_kernel_size: int = 7
  embed_inputs: bool = False

  @nn.compact
  def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    if self.embed_inputs:  # a grid of discrete codes (a VQ-VAE's prior): one variable each
      if images.ndim != 3:
        raise ValueError('GatedPixelCNN with embed_inputs models integer grids [batch, height, '
                         f'width]; got {images.shape}.')
      x = nn.Embed(self.levels, self.features, name='embed')(images.astype(jnp.int32))
    elif images.ndim != 4 or images.shape[-1] != 1:
      raise ValueError('GatedPixelCNN models one-channel images [batch, height, width, 1]; '
                       f'got {images.shape} (colour channels need the masks across channels '
                       'of van den Oord et al. 2016, not implemented).')
    else:
      x = images.astype(jnp.float32)
    # The vertical stack starts from the input too, shifted down by one row inside the first
    # layer's vertical-to-horizontal link; as a vertical stack it may see its own row.
    v, h = GatedLayer(self.features, self.first_kernel_size, first=True, name='layer_0')(x, x)
    for i in range(1, self.num_layers):
      v, h = GatedLayer(self.features, self.kernel_size, name=f'layer_{i}')(v, h)
    out = nn.relu(nn.Conv(self.features, (1, 1), name='out_0')(nn.relu(h)))
    logits = nn.Conv(self.levels, (1, 1), name='out_1')(out)
    return logits[..., None, :], jnp.mean(h, axis=(1, 2))
