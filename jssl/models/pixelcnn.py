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

Colour (C > 1 channels, e.g. RGB): the sub-pixels of one pixel are modelled in channel order,
p(x_ij) = p(R | x_<ij) p(G | x_<ij, R) p(B | x_<ij, R, G), with the masks across channels of the
PixelCNN papers. The F features of the horizontal stack (and of the output layers) are split
into C groups of F / C; group g feeds the prediction of channel g. At the current pixel, group
g may see the input channels < g (the type-A layer, through `horizontal_current`) and the
feature groups <= g (every later layer: the current column of the horizontal kernel, the 1x1
`horizontal_out` and the output layers are masked). Pixels before the current one, and the
vertical stack (rows above), are seen in full. With C = 1 no mask is applied and the
parameters are those of the grey model.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def channel_mask(in_groups: jax.Array, out_groups: jax.Array, *, strict: bool) -> jax.Array:
  """[I, O] float32: 1 where input group may feed output group (< if strict, else <=)."""
  allowed = (in_groups[:, None] < out_groups[None, :] if strict
             else in_groups[:, None] <= out_groups[None, :])
  return allowed.astype(jnp.float32)


def feature_groups(size: int, channels: int) -> jax.Array:
  """Colour group of each of `size` features (size/channels consecutive features per group;
  a gated layer's 2F pre-activations repeat the groups of its F outputs in each half)."""
  return jnp.arange(size) // (size // channels)


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
    features: F (a multiple of `channels`).
    kernel_size: k (odd).
    first: mask type A (the horizontal stack excludes the current pixel; no residual).
    channels: C colour channels of the modelled image (the masks across channels when > 1).
  """
  features: int
  kernel_size: int = 3
  first: bool = False
  channels: int = 1

  def _masks(self, h_width: int, h_in: int):
    """Kernel masks (None for one channel) of the horizontal conv, `horizontal_current`
    (type A, first layer) and `horizontal_out`."""
    c, f = self.channels, self.features
    if c == 1:
      return None, None, None
    out2 = jnp.tile(feature_groups(f, c), 2)  # each gate half carries the groups in order
    current = channel_mask(jnp.arange(c), out2, strict=True)  # input channel < group
    horizontal = None
    if not self.first:  # the kernel's last column is the current pixel: groups <= only
      horizontal = jnp.ones((1, h_width, h_in, 2 * f), jnp.float32)
      horizontal = horizontal.at[0, -1].set(channel_mask(feature_groups(h_in, c), out2,
                                                         strict=False))
    out = channel_mask(feature_groups(f, c), feature_groups(f, c), strict=False)[None, None]
    return horizontal, current[None, None], out

  @nn.compact
  def __call__(self, v: jax.Array, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    k, f = self.kernel_size, self.features
    half = k // 2
    h_mask, current_mask, out_mask = self._masks(half + 1, h.shape[-1])
    # Vertical: output row i sees rows i - half .. i of v (its own row included: that is
    # v's rows above the pixels the horizontal stack will predict once shifted down).
    v_padded = jnp.pad(v, ((0, 0), (half, 0), (half, half), (0, 0)))
    v_conv = nn.Conv(2 * f, (half + 1, k), padding='VALID', name='vertical')(v_padded)
    # Horizontal: output column j sees columns j - half .. j of h (type A: of the input,
    # shifted right so the current pixel is excluded).
    h_in = _shift_right(h) if self.first else h
    h_padded = jnp.pad(h_in, ((0, 0), (0, 0), (half, 0), (0, 0)))
    h_conv = nn.Conv(2 * f, (1, half + 1), padding='VALID', mask=h_mask,
                     name='horizontal')(h_padded)
    if self.first and self.channels > 1:  # the current pixel's earlier channels (type A)
      h_conv = h_conv + nn.Conv(2 * f, (1, 1), mask=current_mask, name='horizontal_current')(h)
    # The vertical stack's view of the rows strictly above, into the horizontal stack.
    h_conv = h_conv + nn.Conv(2 * f, (1, 1), name='vertical_to_horizontal')(_shift_down(v_conv))
    v_out = _gate(v_conv)
    h_out = nn.Conv(f, (1, 1), mask=out_mask, name='horizontal_out')(_gate(h_conv))
    if not self.first:
      h_out = h_out + h
    return v_out, h_out


class GatedPixelCNN(nn.Module):
  """``images [B, H, W, C] in [0, 1] -> (logits [B, H, W, C, levels], features [B, F])``
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
    channels: C of the images (1 grey, 3 colour: the masks across channels; `features` must
      be a multiple of C). The input is then the image scaled to [-1, 1] by the caller or in
      [0, 1]: any real values, only their order of dependence matters.
  """
  levels: int = 2
  features: int = 32
  num_layers: int = 6
  kernel_size: int = 3
  first_kernel_size: int = 7
  embed_inputs: bool = False
  channels: int = 1

  @nn.compact
  def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    if self.embed_inputs:  # a grid of discrete codes (a VQ-VAE's prior): one variable each
      if images.ndim != 3:
        raise ValueError('GatedPixelCNN with embed_inputs models integer grids [batch, height, '
                         f'width]; got {images.shape}.')
      x = nn.Embed(self.levels, self.features, name='embed')(images.astype(jnp.int32))
    elif images.ndim != 4 or images.shape[-1] != self.channels:
      raise ValueError(f'GatedPixelCNN(channels={self.channels}) models images [batch, height, '
                       f'width, {self.channels}]; got {images.shape}.')
    else:
      x = images.astype(jnp.float32)
    c = 1 if self.embed_inputs else self.channels
    if self.features % c:
      raise ValueError(f'GatedPixelCNN: features={self.features} must be a multiple of the '
                       f'{c} channels (one group of features per colour channel).')
    # The vertical stack starts from the input too, shifted down by one row inside the first
    # layer's vertical-to-horizontal link; as a vertical stack it may see its own row.
    v, h = GatedLayer(self.features, self.first_kernel_size, first=True, channels=c,
                      name='layer_0')(x, x)
    for i in range(1, self.num_layers):
      v, h = GatedLayer(self.features, self.kernel_size, channels=c, name=f'layer_{i}')(v, h)
    groups = feature_groups(self.features, c)
    out_masks = (None, None) if c == 1 else (
        channel_mask(groups, groups, strict=False)[None, None],
        channel_mask(groups, jnp.repeat(jnp.arange(c), self.levels), strict=False)[None, None])
    out = nn.relu(nn.Conv(self.features, (1, 1), mask=out_masks[0], name='out_0')(nn.relu(h)))
    logits = nn.Conv(c * self.levels, (1, 1), mask=out_masks[1], name='out_1')(out)
    return logits.reshape(logits.shape[:3] + (c, self.levels)), jnp.mean(h, axis=(1, 2))
