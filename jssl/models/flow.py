"""RealNVP (Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP", ICLR 2017): a
normalising flow of affine coupling layers in a multi-scale architecture, with the paper's
dequantization and logit preprocessing of 8-bit images.

Coupling layers. A binary mask b splits the input x into a half that is kept and a half that
is transformed given the kept one:

    y = b * x + (1 - b) * (x * exp(s(b * x)) + t(b * x)),   log|det dy/dx| = sum (1 - b) * s,

an exact, cheap inverse x = b * y + (1 - b) * (y - t(b * y)) * exp(-s(b * y)) (b * y = b * x).
The masks are the paper's two: a *checkerboard* over the pixels ((i + j) % 2 == parity kept)
and a *channel-wise* split (one half of the channels kept). s and t are one small residual
convnet (no BatchNorm: nothing in this flow depends on the batch, so its inverse is exact);
s = scale * tanh(raw), the paper's bounded scale with a learned per-channel `scale`; the last
convolution starts at zero, so every coupling starts as the identity.

Multi-scale architecture (paper section 3.6). At each of `num_scales` scales: checkerboard
couplings with alternating parity, a squeeze (space-to-depth of 2x2 blocks, [H, W, C] ->
[H/2, W/2, 4C]), channel-wise couplings with alternating halves, then half of the channels
are factored out (they are latent dimensions, modelled by the prior from there on). After the
last scale, `final_couplings` checkerboard couplings. The latent z is every factored-out part
and the final output, flattened and concatenated: [B, D], D = H * W * C, z ~ N(0, I).

Data and bits per dimension (paper section 4.1). Pixels are 8-bit levels k in {0, ..., 255}.
Dequantization: x = (k + u) / 256 with u ~ U[0, 1)^D, so x in [0, 1)^D. Logit: y =
logit(p), p = alpha + (1 - 2 alpha) x (alpha = 0.05 keeps y away from +-inf), with
log|dy/dx| = log(1 - 2 alpha) - log p - log(1 - p) per dimension. The flow f maps y to z. So
log p_X(x) = log N(f(y); 0, I) + log|det df/dy| + sum_d log|dy_d/dx_d|: the density of x on
[0, 1]^D. The dequantized 8-bit values k + u live on [0, 256)^D, where the density is
p_X(x) / 256^D (the change of variables of the 1/256 scaling), and its integral over the unit
cube of level k is a lower bound of the discrete model's P(k) (Theis, van den Oord & Bethge
2016), so

    -log P(k) <= -log p_X(x) + D log 256   (nats, in expectation over u),
    bits_per_dim = (-log p_X(x) + D log 256) / (D ln 2)

is the number RealNVP, Glow and PixelCNN report for 8-bit images (`discrete_nll`). Only the
scaling from [0, 256) to [0, 1] enters as the constant D log 256; the logit's Jacobian is
per example, inside log p_X(x). (p_X integrates to 1 over the box where alpha + (1 - 2 alpha) x
is in (0, 1), a little wider than [0, 1]^D: the mass outside is lost to the 256 levels, so
their probabilities sum to at most 1 and the bound stays a bound.)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jssl.losses.generative import gaussian_log_density


def checkerboard_mask(height: int, width: int, parity: int) -> jax.Array:
  """float32 [H, W, 1]: 1 at the pixels a checkerboard coupling keeps ((i + j) % 2 == parity)."""
  rows = jnp.arange(height)[:, None]
  cols = jnp.arange(width)[None, :]
  return ((rows + cols) % 2 == parity).astype(jnp.float32)[..., None]


def squeeze(x: jax.Array) -> jax.Array:
  """Space-to-depth: [B, H, W, C] -> [B, H/2, W/2, 4C], channels ordered (row, column, c) of
  each 2x2 block."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // 2, w // 2, 4 * c)


def unsqueeze(x: jax.Array) -> jax.Array:
  """Inverse of `squeeze`: [B, H, W, 4C] -> [B, 2H, 2W, C]."""
  b, h, w, c4 = x.shape
  c = c4 // 4
  x = x.reshape(b, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c)


def _per_example_sum(x: jax.Array) -> jax.Array:
  return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


class Squeeze(nn.Module):
  """`squeeze` as a flow layer: volume preserving, log|det| = 0."""

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return squeeze(x), jnp.zeros(x.shape[0], jnp.float32)

  def inverse(self, y: jax.Array) -> jax.Array:
    return unsqueeze(y)


class LogitTransform(nn.Module):
  """x in [0, 1] -> y = logit(alpha + (1 - 2 alpha) x), elementwise (the paper's preprocessing).

  Attributes:
    alpha: in (0, 0.5); the paper's 0.05.
  """
  alpha: float = 0.05

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x [B, ...] -> (y [B, ...], log|det dy/dx| [B])."""
    p = self.alpha + (1.0 - 2.0 * self.alpha) * x
    y = jnp.log(p) - jnp.log1p(-p)
    # log|dy/dx| = log(1 - 2 alpha) - log p - log(1 - p), and -log p - log(1 - p) =
    # softplus(y) + softplus(-y): stable for any y.
    log_det = math.log(1.0 - 2.0 * self.alpha) + jax.nn.softplus(y) + jax.nn.softplus(-y)
    return y, _per_example_sum(log_det)

  def inverse(self, y: jax.Array) -> jax.Array:
    return (jax.nn.sigmoid(y) - self.alpha) / (1.0 - 2.0 * self.alpha)


class CouplingNet(nn.Module):
  """The s and t of a coupling: conv 3x3 -> `num_blocks` residual blocks -> conv 3x3 (zero
  initialised) to 2 * `out_channels`; returns (s, t), each [B, H, W, out_channels], with
  s = scale * tanh(raw) and a learned per-channel scale (starting at 1)."""
  features: int
  num_blocks: int
  out_channels: int

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = nn.relu(nn.Conv(self.features, (3, 3), name='conv_in')(x))
    for i in range(self.num_blocks):
      r = nn.relu(nn.Conv(self.features, (3, 3), name=f'block_{i}_conv_0')(h))
      r = nn.Conv(self.features, (3, 3), name=f'block_{i}_conv_1')(r)
      h = nn.relu(h + r)
    out = nn.Conv(2 * self.out_channels, (3, 3), kernel_init=nn.initializers.zeros,
                  name='conv_out')(h)
    raw, t = jnp.split(out, 2, axis=-1)
    scale = self.param('scale', nn.initializers.ones, (self.out_channels,))
    return scale * jnp.tanh(raw), t


class CheckerboardCoupling(nn.Module):
  """Affine coupling with a checkerboard mask: the pixels with (i + j) % 2 == parity are kept.

  The s / t network sees the kept pixels (the others zeroed) and the mask itself as an extra
  channel (so a zero it sees is known to be a masked one).
  """
  parity: int
  features: int
  num_blocks: int

  @nn.compact
  def _shift(self, kept: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    net = CouplingNet(self.features, self.num_blocks, kept.shape[-1], name='net')
    inputs = jnp.concatenate([kept, jnp.broadcast_to(mask, kept.shape[:-1] + (1,))], axis=-1)
    s, t = net(inputs)
    return s * (1.0 - mask), t * (1.0 - mask)

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x [B, H, W, C] -> (y [B, H, W, C], log|det dy/dx| [B])."""
    mask = checkerboard_mask(x.shape[1], x.shape[2], self.parity)
    s, t = self._shift(x * mask, mask)
    return x * jnp.exp(s) + t, _per_example_sum(s)

  def inverse(self, y: jax.Array) -> jax.Array:
    mask = checkerboard_mask(y.shape[1], y.shape[2], self.parity)
    s, t = self._shift(y * mask, mask)
    return (y - t) * jnp.exp(-s)


class ChannelCoupling(nn.Module):
  """Affine coupling with a channel-wise mask: the first half of the channels is kept when
  parity is 0, the second half when it is 1; the other half is transformed."""
  parity: int
  features: int
  num_blocks: int

  @nn.compact
  def _shift(self, kept: jax.Array) -> tuple[jax.Array, jax.Array]:
    return CouplingNet(self.features, self.num_blocks, kept.shape[-1], name='net')(kept)

  def _split(self, x):
    a, b = jnp.split(x, 2, axis=-1)
    return (a, b) if self.parity == 0 else (b, a)

  def _join(self, kept, changed):
    return jnp.concatenate([kept, changed] if self.parity == 0 else [changed, kept], axis=-1)

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x [B, H, W, C] (C even) -> (y [B, H, W, C], log|det dy/dx| [B])."""
    kept, changed = self._split(x)
    s, t = self._shift(kept)
    return self._join(kept, changed * jnp.exp(s) + t), _per_example_sum(s)

  def inverse(self, y: jax.Array) -> jax.Array:
    kept, changed = self._split(y)
    s, t = self._shift(kept)
    return self._join(kept, (changed - t) * jnp.exp(-s))


def multiscale_plan(num_scales: int, checkerboard_couplings: int, channel_couplings: int,
                    final_couplings: int) -> tuple[tuple, ...]:
  """The layers of the multi-scale architecture in forward order: ('checkerboard', parity),
  'squeeze', ('channel', parity), 'factor_out' (half of the channels leave), ..."""
  plan = []
  for _ in range(num_scales):
    plan += [('checkerboard', i % 2) for i in range(checkerboard_couplings)]
    plan.append(('squeeze',))
    plan += [('channel', i % 2) for i in range(channel_couplings)]
    plan.append(('factor_out',))
  plan += [('checkerboard', i % 2) for i in range(final_couplings)]
  return tuple(plan)


class RealNVP(nn.Module):
  """The multi-scale RealNVP flow: y [B, H, W, C] -> (z [B, D], log|det dz/dy| [B]).

  Attributes:
    image_shape: (H, W, C); H and W divisible by 2 ** num_scales.
    num_scales: scales of (checkerboard couplings, squeeze, channel couplings, factor out).
    features: channels of the s / t networks.
    num_blocks: residual blocks of each s / t network.
    checkerboard_couplings, channel_couplings: couplings of each kind per scale (paper: 3, 3).
    final_couplings: checkerboard couplings after the last scale (paper: 4).
  """
  image_shape: Sequence[int]
  num_scales: int
  features: int
  num_blocks: int
  checkerboard_couplings: int = 3
  channel_couplings: int = 3
  final_couplings: int = 4

  def setup(self):
    self.plan = multiscale_plan(self.num_scales, self.checkerboard_couplings,
                                self.channel_couplings, self.final_couplings)
    layers = []
    for op in self.plan:
      if op[0] == 'checkerboard':
        layers.append(CheckerboardCoupling(op[1], self.features, self.num_blocks))
      elif op[0] == 'channel':
        layers.append(ChannelCoupling(op[1], self.features, self.num_blocks))
    self.couplings = layers

  def _factor_shapes(self) -> tuple[list, tuple]:
    """([H, W, C] of every factored-out part, [H, W, C] of the final output)."""
    h, w, c = self.image_shape
    parts = []
    for op in self.plan:
      if op[0] == 'squeeze':
        h, w, c = h // 2, w // 2, 4 * c
      elif op[0] == 'factor_out':
        parts.append((h, w, c // 2))
        c -= c // 2
    return parts, (h, w, c)

  def __call__(self, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """y [B, H, W, C] -> (z [B, D], log|det dz/dy| [B])."""
    if tuple(y.shape[1:]) != tuple(self.image_shape):
      raise ValueError(f'RealNVP of {tuple(self.image_shape)} images got {y.shape}.')
    h, log_det, parts, k = y, jnp.zeros(y.shape[0], jnp.float32), [], 0
    for op in self.plan:
      if op[0] == 'squeeze':
        h = squeeze(h)
      elif op[0] == 'factor_out':
        c = h.shape[-1] // 2
        parts.append(h[..., :c].reshape(h.shape[0], -1))
        h = h[..., c:]
      else:
        h, layer_log_det = self.couplings[k](h)
        log_det, k = log_det + layer_log_det, k + 1
    parts.append(h.reshape(h.shape[0], -1))
    return jnp.concatenate(parts, axis=-1), log_det

  def inverse(self, z: jax.Array) -> jax.Array:
    """z [B, D] -> y [B, H, W, C]."""
    shapes, final = self._factor_shapes()
    sizes = [math.prod(s) for s in shapes + [final]]
    pieces = jnp.split(z, list(itertools.accumulate(sizes))[:-1], axis=-1)
    h = pieces[-1].reshape((z.shape[0],) + final)
    factored = [p.reshape((z.shape[0],) + s) for p, s in zip(pieces[:-1], shapes)]
    k = len(self.couplings)
    for op in reversed(self.plan):
      if op[0] == 'squeeze':
        h = unsqueeze(h)
      elif op[0] == 'factor_out':
        h = jnp.concatenate([factored.pop(), h], axis=-1)
      else:
        k -= 1
        h = self.couplings[k].inverse(h)
    return h


class ImageFlow(nn.Module):
  """The whole model of dequantized images: `LogitTransform` then `RealNVP`.

  `__call__`: x [B, H, W, C] in [0, 1] -> (z [B, D], log|det dz/dx| [B]) (the logit's
  Jacobian included); `inverse`: z -> x (not clipped; `sample` clips).
  """
  image_shape: Sequence[int]
  num_scales: int
  features: int
  num_blocks: int
  checkerboard_couplings: int = 3
  channel_couplings: int = 3
  final_couplings: int = 4
  alpha: float = 0.05

  def setup(self):
    self.logit = LogitTransform(self.alpha)
    self.flow = RealNVP(tuple(self.image_shape), self.num_scales, self.features,
                        self.num_blocks, self.checkerboard_couplings, self.channel_couplings,
                        self.final_couplings)

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    y, logit_log_det = self.logit(x)
    z, flow_log_det = self.flow(y)
    return z, logit_log_det + flow_log_det

  def inverse(self, z: jax.Array) -> jax.Array:
    return self.logit.inverse(self.flow.inverse(z))


def dequantize(keys: jax.Array, images: jax.Array, *, levels: int = 256) -> jax.Array:
  """Uniform dequantization: (k + u) / levels with u ~ U[0, 1), one key per example.

  Args:
    keys: [B] keys.
    images: [B, H, W, C] integer levels in [0, levels) (uint8 for 8-bit images).

  Returns:
    float32 [B, H, W, C] in [0, 1).
  """
  k = images.astype(jnp.float32)
  u = jax.vmap(lambda key, x: jax.random.uniform(key, x.shape, jnp.float32))(keys, k)
  return (k + u) / levels


def discrete_nll(z: jax.Array, log_det: jax.Array, *, levels: int = 256) -> jax.Array:
  """Negative log-likelihood of the discrete `levels`-level images whose dequantized values in
  [0, 1] the flow mapped to z (an upper bound in expectation over the dequantization noise).

  Args:
    z: [B, D] latents, prior N(0, I).
    log_det: [B] log|det dz/dx| of the whole flow from x in [0, 1]^D (logit included).
    levels: pixel levels (256 for 8-bit images).

  Returns:
    [B] float32 nats: -log N(z; 0, I) - log_det + D log(levels). Divide by D ln 2 for bits
    per dimension.
  """
  z = z.astype(jnp.float32)
  log_prior = gaussian_log_density(z, jnp.zeros_like(z), jnp.zeros_like(z))
  return -(log_prior + log_det) + z.shape[-1] * math.log(levels)
