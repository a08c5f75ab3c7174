"""Pure, jit-compatible image augmentations on device (SimCLR / BYOL style).

Every random op works on one example, `image: float32 [H, W, C]` in [0, 1] with C = 1 or 3,
and takes its own PRNG key; `map_examples` splits one key into a key per example and
`jax.vmap`s an op over a batch `[B, H, W, C]`. Because every random number comes from a
per-example key derived from the one batch key, the result does not depend on how the batch
is sharded over devices (tested on 8 simulated devices, with Explicit and Auto mesh axes).

The composition follows SimCLR (Chen et al., 2020, Appendix A) and BYOL (Grill et al., 2020,
Appendix B): random resized crop -> horizontal flip -> colour jitter (random order) ->
grayscale -> Gaussian blur -> solarize. Outputs stay in [0, 1]; normalisation, if any, is the
model's business.

Configurations (`ViewConfig`) are frozen, hashable dataclasses: pass them as static
arguments to `jax.jit` (`static_argnames='view'` / `'views'`) or close over them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

# ITU-R BT.601 luma weights, as in torchvision's rgb_to_grayscale and PIL's convert('L').
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

# torchvision's RandomResizedCrop draws up to 10 (area, aspect ratio) candidates and keeps the
# first that fits in the image.
_NUM_CROP_ATTEMPTS = 10


# ----------------------------------------------------------------------------------------------
# Conversions and deterministic ops (one example, [H, W, C]).
# ----------------------------------------------------------------------------------------------


def to_float(images: jax.Array) -> jax.Array:
  """uint8 images in [0, 255] -> float32 in [0, 1]; float images are cast to float32 as is.

  Args:
    images: uint8 or float array of any shape.

  Returns:
    float32 array of the same shape.
  """
  images = jnp.asarray(images)
  if images.dtype == jnp.uint8:
    return images.astype(jnp.float32) / 255.0
  return images.astype(jnp.float32)


def to_grayscale(image: jax.Array) -> jax.Array:
  """ITU-R 601 luma, repeated over the channels; identity on 1-channel images.

  Args:
    image: [..., C] with C = 1 or 3.

  Returns:
    [..., C], every channel equal to 0.299 R + 0.587 G + 0.114 B.
  """
  if image.shape[-1] == 1:
    return image
  luma = _luma(image)
  return jnp.broadcast_to(luma, image.shape)


def _luma(image: jax.Array) -> jax.Array:
  """[..., C] -> [..., 1] luma (the image itself when C = 1)."""
  if image.shape[-1] == 1:
    return image
  weights = jnp.asarray(LUMA_WEIGHTS, image.dtype)
  return jnp.sum(image * weights, axis=-1, keepdims=True)


def _blend(image: jax.Array, other: jax.Array, factor: jax.Array) -> jax.Array:
  """factor * image + (1 - factor) * other, clipped to [0, 1] (torchvision's `_blend`)."""
  return jnp.clip(factor * image + (1.0 - factor) * other, 0.0, 1.0)


def adjust_brightness(image: jax.Array, factor: jax.Array) -> jax.Array:
  """Multiplies by `factor` and clips to [0, 1].  image: [H, W, C]; factor: scalar."""
  return jnp.clip(image * factor, 0.0, 1.0)


def adjust_contrast(image: jax.Array, factor: jax.Array) -> jax.Array:
  """Blends with the mean luma of the image (a constant grey image).

  Args:
    image: [H, W, C].
    factor: scalar; 0 gives the mean grey image, 1 the original.

  Returns:
    [H, W, C] in [0, 1].
  """
  mean = jnp.mean(_luma(image))
  return _blend(image, mean, factor)


def adjust_saturation(image: jax.Array, factor: jax.Array) -> jax.Array:
  """Blends with the grayscale image; identity on 1-channel images.

  Args:
    image: [H, W, C].
    factor: scalar; 0 gives the grayscale image, 1 the original.

  Returns:
    [H, W, C] in [0, 1].
  """
  if image.shape[-1] == 1:
    return image
  return _blend(image, _luma(image), factor)


def rgb_to_hsv(rgb: jax.Array) -> jax.Array:
  """RGB -> HSV, all channels in [0, 1] (the hexcone model of `colorsys`).

  Args:
    rgb: [..., 3] in [0, 1].

  Returns:
    [..., 3] (hue, saturation, value) in [0, 1]; hue is 0 where the pixel is grey.
  """
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  maxc = jnp.max(rgb, axis=-1)
  minc = jnp.min(rgb, axis=-1)
  delta = maxc - minc
  safe_delta = jnp.where(delta > 0, delta, 1.0)
  safe_max = jnp.where(maxc > 0, maxc, 1.0)
  saturation = jnp.where(maxc > 0, delta / safe_max, 0.0)
  hue = jnp.where(
      maxc == r, (g - b) / safe_delta,
      jnp.where(maxc == g, 2.0 + (b - r) / safe_delta, 4.0 + (r - g) / safe_delta))
  hue = jnp.where(delta > 0, jnp.mod(hue / 6.0, 1.0), 0.0)
  return jnp.stack([hue, saturation, maxc], axis=-1)


def hsv_to_rgb(hsv: jax.Array) -> jax.Array:
  """HSV -> RGB, the inverse of `rgb_to_hsv`.

  Args:
    hsv: [..., 3] (hue, saturation, value) in [0, 1].

  Returns:
    [..., 3] RGB in [0, 1].
  """
  hue, saturation, value = hsv[..., 0:1], hsv[..., 1:2], hsv[..., 2:3]
  # Branch-free form: channel n (n = 5, 3, 1 for R, G, B) is v - v s clip(min(k, 4 - k), 0, 1)
  # with k = (n + 6 h) mod 6.
  n = jnp.asarray([5.0, 3.0, 1.0], hsv.dtype)
  k = jnp.mod(n + hue * 6.0, 6.0)
  ramp = jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)
  return value - value * saturation * ramp


def adjust_hue(image: jax.Array, delta: jax.Array) -> jax.Array:
  """Rotates the hue by `delta` (a fraction of the colour wheel) via RGB -> HSV -> RGB.

  Identity on 1-channel images.

  Args:
    image: [H, W, C] in [0, 1].
    delta: scalar in [-0.5, 0.5].

  Returns:
    [H, W, C] in [0, 1].
  """
  if image.shape[-1] == 1:
    return image
  hsv = rgb_to_hsv(image)
  hue = jnp.mod(hsv[..., 0] + delta, 1.0)
  hsv = jnp.stack([hue, hsv[..., 1], hsv[..., 2]], axis=-1)
  return jnp.clip(hsv_to_rgb(hsv), 0.0, 1.0)


def solarize(image: jax.Array, threshold: float = 0.5) -> jax.Array:
  """x -> x if x < threshold else 1 - x (BYOL's solarization).  image: [H, W, C]."""
  return jnp.where(image < threshold, image, 1.0 - image)


def blur_kernel_size(side: int) -> int:
  """About 10% of the image side, odd and >= 3 (23 for 224, as in SimCLR / BYOL)."""
  size = int(0.1 * side)
  if size % 2 == 0:
    size += 1
  return max(3, size)


def gaussian_blur(image: jax.Array, sigma: jax.Array, *, kernel_size: int | None = None
                  ) -> jax.Array:
  """Separable Gaussian blur with reflect padding.

  Args:
    image: [H, W, C] with H, W > kernel_size // 2.
    sigma: scalar standard deviation in pixels (may be traced).
    kernel_size: odd static size; default `blur_kernel_size(min(H, W))`.

  Returns:
    [H, W, C] in [0, 1].
  """
  height, width = image.shape[:2]
  if kernel_size is None:
    kernel_size = blur_kernel_size(min(height, width))
  if kernel_size % 2 != 1 or kernel_size < 1:
    raise ValueError(f'kernel_size must be a positive odd integer, got {kernel_size}')
  radius = kernel_size // 2
  if radius >= min(height, width):
    raise ValueError(
        f'blur kernel_size {kernel_size} is too large for a {height}x{width} image '
        f'(reflect padding needs kernel_size // 2 < {min(height, width)})')
  offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  kernel = jnp.exp(-0.5 * jnp.square(offsets / sigma))
  kernel = kernel / jnp.sum(kernel)

  def blur_axis(x, axis):
    pad = [(0, 0)] * x.ndim
    pad[axis] = (radius, radius)
    padded = jnp.pad(x, pad, mode='reflect')
    size = x.shape[axis]
    # A weighted sum of shifted copies: k is small and this vmaps without batched convs.
    return sum(kernel[i] * jax.lax.slice_in_dim(padded, i, i + size, axis=axis)
               for i in range(kernel_size))

  blurred = blur_axis(blur_axis(image, 0), 1)
  return jnp.clip(blurred, 0.0, 1.0)


def center_resize(image: jax.Array, *, out_size: int) -> jax.Array:
  """Resizes the whole image to out_size x out_size (bilinear, antialiased when shrinking).

  Args:
    image: [H, W, C] (or [B, H, W, C]) float.
    out_size: output side.

  Returns:
    [out_size, out_size, C] (or [B, out_size, out_size, C]) float32.
  """
  image = image.astype(jnp.float32)
  shape = image.shape[:-3] + (out_size, out_size, image.shape[-1])
  if shape == image.shape:
    return image
  resized = jax.image.resize(image, shape, method='bilinear', antialias=True)
  return jnp.clip(resized, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# Random ops (one example, [H, W, C], one key).
# ----------------------------------------------------------------------------------------------


# Every random op is a deterministic function of a few uniform [0, 1) numbers, `u`, drawn with
# one `jax.random.uniform(key, (n,))` call; `augment_example` draws the numbers of all its ops
# at once. Each draw inlines a threefry hash, and fewer of them compile several times faster.
_CROP_DRAWS = 2 * _NUM_CROP_ATTEMPTS + 2  # Areas, log-ratios, top and left offsets.
_JITTER_DRAWS = 9  # Apply or not, four factors, four sort keys for the order.
_BLUR_DRAWS = 2  # Apply or not, sigma.


def _maybe_apply(coin: jax.Array, prob: float, fn: Callable[[jax.Array], jax.Array],
                 image: jax.Array) -> jax.Array:
  """Applies `fn` where `coin` (uniform in [0, 1)) < `prob`; static p = 0 / 1 skip the test."""
  if prob <= 0.0:
    return image
  if prob >= 1.0:
    return fn(image)
  return jnp.where(coin < prob, fn(image), image)


def _uniform_in(u: jax.Array, low: float, high: float) -> jax.Array:
  """Maps uniform [0, 1) numbers to [low, high)."""
  return low + (high - low) * u


def random_resized_crop(key: jax.Array, image: jax.Array, *, out_size: int,
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> jax.Array:
  """Crops a random region and resizes it to out_size x out_size (torchvision semantics).

  The area fraction is uniform in `scale` and the aspect ratio (w / h) log-uniform in
  `ratio`. As in torchvision, 10 candidates are drawn and the first that fits inside the image
  is used; if none fits, the last is clipped to the image. Unlike torchvision the crop's size and
  offset are not rounded to whole pixels: the crop is resampled with bilinear interpolation
  (antialiased when shrinking) from continuous coordinates.

  Args:
    key: PRNG key for this example.
    image: [H, W, C] float.
    out_size: output side.
    scale: (min, max) fraction of the image area.
    ratio: (min, max) aspect ratio w / h.

  Returns:
    [out_size, out_size, C] float32 in [0, 1].
  """
  return _resized_crop(jax.random.uniform(key, (_CROP_DRAWS,)), image, out_size=out_size,
                       scale=scale, ratio=ratio)


def _resized_crop(u, image, *, out_size, scale, ratio):
  height, width, channels = image.shape
  image = image.astype(jnp.float32)
  n = _NUM_CROP_ATTEMPTS
  area = height * width * _uniform_in(u[:n], scale[0], scale[1])
  aspect = jnp.exp(_uniform_in(u[n:2 * n], math.log(ratio[0]), math.log(ratio[1])))
  crop_w = jnp.sqrt(area * aspect)
  crop_h = jnp.sqrt(area / aspect)
  fits = (crop_w <= width) & (crop_h <= height)
  # The first candidate that fits; if none does, the last one, clipped below.
  index = jnp.where(jnp.any(fits), jnp.argmax(fits), _NUM_CROP_ATTEMPTS - 1)
  crop_w = jnp.clip(crop_w[index], 1.0, width)
  crop_h = jnp.clip(crop_h[index], 1.0, height)
  top = u[2 * n] * (height - crop_h)
  left = u[2 * n + 1] * (width - crop_w)
  # scale_and_translate maps input coordinate u to u * scale + translation, so the crop
  # [top, top + crop_h] lands on [0, out_size].
  scale_hw = jnp.stack([out_size / crop_h, out_size / crop_w])
  translation = -jnp.stack([top, left]) * scale_hw
  crop = jax.image.scale_and_translate(
      image, (out_size, out_size, channels), (0, 1), scale_hw, translation,
      method='linear', antialias=True)
  return jnp.clip(crop, 0.0, 1.0)


def random_flip(key: jax.Array, image: jax.Array, *, prob: float = 0.5) -> jax.Array:
  """Flips left-right with probability `prob`.  image: [H, W, C] -> [H, W, C]."""
  return _maybe_apply(jax.random.uniform(key), prob, lambda x: x[:, ::-1], image)


def color_jitter(key: jax.Array, image: jax.Array, *, prob: float, brightness: float = 0.0,
                 contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0
                 ) -> jax.Array:
  """torchvision's ColorJitter, applied with probability `prob`, sub-ops in random order.

  Factors: brightness, contrast and saturation uniform in [max(0, 1 - s), 1 + s]; hue shift
  uniform in [-hue, hue] of the colour wheel, applied in HSV space (RGB -> HSV -> RGB). Each
  sub-op clips to [0, 1]. A sub-op with strength 0 (and saturation / hue on 1-channel images)
  is left out, so all-zero strengths are exactly the identity.

  Args:
    key: PRNG key for this example.
    image: [H, W, C] float in [0, 1].
    prob: probability of applying the jitter at all.
    brightness, contrast, saturation: strengths >= 0.
    hue: strength in [0, 0.5].

  Returns:
    [H, W, C] float32 in [0, 1].
  """
  return _color_jitter(jax.random.uniform(key, (_JITTER_DRAWS,)), image, prob=prob,
                       brightness=brightness, contrast=contrast, saturation=saturation, hue=hue)


def _color_jitter(u, image, *, prob, brightness, contrast, saturation, hue):
  # u[0]: apply or not; u[1:5]: the four factors; u[5:9]: sort keys of the random order.
  colour = image.shape[-1] == 3

  def factor(v, strength):
    return _uniform_in(v, max(0.0, 1.0 - strength), 1.0 + strength)

  ops = []
  if brightness > 0:
    ops.append(functools.partial(adjust_brightness, factor=factor(u[1], brightness)))
  if contrast > 0:
    ops.append(functools.partial(adjust_contrast, factor=factor(u[2], contrast)))
  if saturation > 0 and colour:
    ops.append(functools.partial(adjust_saturation, factor=factor(u[3], saturation)))
  if hue > 0 and colour:
    ops.append(functools.partial(adjust_hue, delta=_uniform_in(u[4], -hue, hue)))
  if not ops:
    return image

  def jitter(x):
    # A uniformly random permutation of the active sub-ops.
    order = jnp.argsort(u[5:5 + len(ops)])

    def step(position, y):
      # Every sub-op is evaluated and one selected: that is what a vmapped `lax.switch` does
      # anyway, and (jax 0.10) a switch inside this loop fails to batch on Explicit mesh axes.
      return jax.lax.select_n(order[position], *[op(y) for op in ops])

    # A loop rather than an unrolled sequence compiles the sub-ops once instead of once per
    # position (several times faster to compile).
    return jax.lax.fori_loop(0, len(ops), step, x)

  return _maybe_apply(u[0], prob, jitter, image)


def random_grayscale(key: jax.Array, image: jax.Array, *, prob: float) -> jax.Array:
  """Converts to (C-channel) grayscale with probability `prob`.  [H, W, C] -> [H, W, C]."""
  if image.shape[-1] == 1:
    return image
  return _maybe_apply(jax.random.uniform(key), prob, to_grayscale, image)


def random_blur(key: jax.Array, image: jax.Array, *, prob: float,
                sigma: tuple[float, float] = (0.1, 2.0), kernel_size: int | None = None
                ) -> jax.Array:
  """Gaussian blur with probability `prob`, sigma uniform in `sigma`.

  Args:
    key: PRNG key for this example.
    image: [H, W, C] float in [0, 1].
    prob: probability of blurring.
    sigma: (min, max) standard deviation in pixels.
    kernel_size: odd static size; default ~10% of the image side (see `blur_kernel_size`).

  Returns:
    [H, W, C] float32 in [0, 1].
  """
  return _blur(jax.random.uniform(key, (_BLUR_DRAWS,)), image, prob=prob, sigma=sigma,
               kernel_size=kernel_size)


def _blur(u, image, *, prob, sigma, kernel_size=None):
  if prob <= 0.0:
    return image
  blur = functools.partial(gaussian_blur, sigma=_uniform_in(u[1], sigma[0], sigma[1]),
                           kernel_size=kernel_size)
  return _maybe_apply(u[0], prob, blur, image)


def random_solarize(key: jax.Array, image: jax.Array, *, prob: float,
                    threshold: float = 0.5) -> jax.Array:
  """Solarizes (x -> 1 - x where x >= threshold) with probability `prob`.  [H, W, C]."""
  coin = jax.random.uniform(key)
  return _maybe_apply(coin, prob, functools.partial(solarize, threshold=threshold), image)


def cutout(image: jax.Array, top: jax.Array, left: jax.Array, size: int) -> jax.Array:
  """Sets a `size` x `size` square whose top-left corner is (top, left) to 0.5 (grey).

  The square may extend past the border (DeVries & Taylor 2017 centre their square anywhere in
  the image); only the part inside is erased. [H, W, C] -> [H, W, C].
  """
  rows = jnp.arange(image.shape[0])[:, None, None]
  cols = jnp.arange(image.shape[1])[None, :, None]
  inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
  return jnp.where(inside, jnp.asarray(0.5, image.dtype), image)


def _cutout(u, image, *, prob, size_fraction):
  """Cutout with probability `prob`; the square's side is `size_fraction` of the image side and
  its centre is uniform over the image (u: 3 uniforms: apply or not, centre row, centre col)."""
  if prob <= 0.0:
    return image
  size = max(1, round(size_fraction * min(image.shape[0], image.shape[1])))
  top = jnp.floor(u[1] * image.shape[0]).astype(jnp.int32) - size // 2
  left = jnp.floor(u[2] * image.shape[1]).astype(jnp.int32) - size // 2
  return _maybe_apply(u[0], prob, lambda x: cutout(x, top, left, size), image)


def rotate90(image: jax.Array, quarter_turns: jax.Array) -> jax.Array:
  """Rotates a square [S, S, C] image by `quarter_turns` x 90 degrees (traced int 0..3)."""
  # select_n over the four rotations rather than lax.switch: a vmapped switch is a select
  # anyway, and select_n batches on Explicit mesh axes (see _color_jitter).
  return jax.lax.select_n(quarter_turns, *[jnp.rot90(image, k=k, axes=(0, 1)) for k in range(4)])


def rotate(images: jax.Array, degrees: float) -> jax.Array:
  """Rotates square images [B, S, S, C] counter-clockwise about their centre by a static angle.

  Multiples of 90 degrees are exact (`jnp.rot90`); other angles sample the input bilinearly
  (`rotate_bilinear`), with zeros where the rotated square leaves the input (the corners of a
  45-degree rotation).
  """
  turns, rest = divmod(float(degrees), 90.0)
  if rest == 0.0:
    return jnp.rot90(images, k=int(turns) % 4, axes=(1, 2))
  return rotate_bilinear(images, degrees)


def rotate_bilinear(images: jax.Array, degrees: float) -> jax.Array:
  """`rotate` by bilinear sampling, for any static angle: output pixel (y, x), centred, reads
  the input at (cos a * y + sin a * x, -sin a * y + cos a * x) (rows down, so a positive
  angle turns the picture counter-clockwise, as `jnp.rot90`); neighbours outside count 0."""
  side = images.shape[1]
  if images.shape[2] != side:
    raise ValueError(f'rotate needs square images, got {images.shape}')
  centre = (side - 1) / 2
  angle = math.radians(degrees)
  y, x = np.meshgrid(np.arange(side) - centre, np.arange(side) - centre, indexing='ij')
  src_y = math.cos(angle) * y + math.sin(angle) * x + centre
  src_x = -math.sin(angle) * y + math.cos(angle) * x + centre
  y0, x0 = np.floor(src_y), np.floor(src_x)
  out = jnp.zeros_like(images)
  for dy in (0, 1):
    for dx in (0, 1):
      rows, cols = y0 + dy, x0 + dx
      weight = (1 - np.abs(src_y - rows)) * (1 - np.abs(src_x - cols))
      weight = np.where((rows >= 0) & (rows < side) & (cols >= 0) & (cols < side), weight, 0.0)
      rows = np.clip(rows, 0, side - 1).astype(np.int32)
      cols = np.clip(cols, 0, side - 1).astype(np.int32)
      out = out + jnp.asarray(weight, images.dtype)[None, :, :, None] * images[:, rows, cols, :]
  return out


def _rotate(u, image, *, prob):
  """With probability `prob`, a rotation by 90, 180 or 270 degrees, chosen uniformly
  (SimCLR's Fig. 5 rotation; u: 2 uniforms)."""
  if prob <= 0.0:
    return image
  turns = 1 + jnp.minimum(jnp.floor(u[1] * 3).astype(jnp.int32), 2)
  return _maybe_apply(u[0], prob, lambda x: rotate90(x, turns), image)


def map_examples(fn: Callable[[jax.Array, jax.Array], jax.Array], key: jax.Array,
                 images: jax.Array) -> jax.Array:
  """Applies a per-example random op to a batch with one key per example.

  Args:
    fn: `fn(key, image [H, W, C]) -> [H', W', C]`, e.g.
      `functools.partial(random_flip, prob=0.5)`.
    key: one PRNG key (typed `jax.random.key` or raw `PRNGKey`) for the whole batch.
    images: [B, H, W, C].

  Returns:
    [B, H', W', C]; example b used `jax.random.split(key, B)[b]`.
  """
  keys = jax.random.split(key, images.shape[0])
  # Under a mesh with Explicit axes (`jax.make_mesh`'s default) the batch dimension's sharding
  # is part of the type, and vmap needs the keys sharded like the images.
  sharding = jax.typeof(images).sharding
  if sharding.spec and sharding.spec[0] is not None:
    if isinstance(keys, jax.core.Tracer):
      keys = jax.sharding.reshard(keys, sharding.update(spec=(sharding.spec[0],)))
    else:  # Eager: reshard would need a mesh context; the array knows its concrete mesh.
      keys = jax.device_put(keys, images.sharding.update(spec=(sharding.spec[0],)))
  return jax.vmap(fn)(keys, images)


# ----------------------------------------------------------------------------------------------
# Composition.
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ViewConfig:
  """How one view is made; the defaults give a random resized crop and nothing else.

  Attributes:
    out_size: side of the output view.
    crop_scale: (min, max) fraction of the image area kept by the random resized crop.
    crop_ratio: (min, max) aspect ratio w / h of the crop.
    flip_prob: probability of a horizontal flip.
    jitter_prob: probability of colour jitter.
    brightness, contrast, saturation, hue: colour jitter strengths.
    grayscale_prob: probability of converting to grayscale.
    blur_prob: probability of Gaussian blur.
    blur_sigma: (min, max) blur standard deviation in pixels.
    solarize_prob: probability of solarization.
    cutout_prob: probability of cutout (a grey square, DeVries & Taylor 2017).
    cutout_size: side of the cutout square as a fraction of the view's side.
    rotate_prob: probability of a rotation by 90, 180 or 270 degrees (square views).
  """

  out_size: int
  crop_scale: tuple[float, float] = (0.08, 1.0)
  crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
  flip_prob: float = 0.0
  jitter_prob: float = 0.0
  brightness: float = 0.0
  contrast: float = 0.0
  saturation: float = 0.0
  hue: float = 0.0
  grayscale_prob: float = 0.0
  blur_prob: float = 0.0
  blur_sigma: tuple[float, float] = (0.1, 2.0)
  solarize_prob: float = 0.0
  cutout_prob: float = 0.0
  cutout_size: float = 0.5
  rotate_prob: float = 0.0

  def __post_init__(self):
    # Lists (e.g. from a config file) become tuples so the config stays hashable.
    for name in ('crop_scale', 'crop_ratio', 'blur_sigma'):
      value = getattr(self, name)
      if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f'ViewConfig.{name} must be a (min, max) pair, got {value!r}')
      object.__setattr__(self, name, tuple(float(v) for v in value))
    if not isinstance(self.out_size, int) or self.out_size < 1:
      raise ValueError(f'ViewConfig.out_size must be a positive int, got {self.out_size!r}')
    lo, hi = self.crop_scale
    if not 0 < lo <= hi <= 1:
      raise ValueError(f'ViewConfig.crop_scale must satisfy 0 < min <= max <= 1, '
                       f'got {self.crop_scale}')
    lo, hi = self.crop_ratio
    if not 0 < lo <= hi:
      raise ValueError(f'ViewConfig.crop_ratio must satisfy 0 < min <= max, '
                       f'got {self.crop_ratio}')
    lo, hi = self.blur_sigma
    if not 0 < lo <= hi:
      raise ValueError(f'ViewConfig.blur_sigma must satisfy 0 < min <= max, '
                       f'got {self.blur_sigma}')
    for name in ('flip_prob', 'jitter_prob', 'grayscale_prob', 'blur_prob', 'solarize_prob',
                 'cutout_prob', 'rotate_prob'):
      value = getattr(self, name)
      if not 0 <= value <= 1:
        raise ValueError(f'ViewConfig.{name} is a probability in [0, 1], got {value!r}')
    for name in ('brightness', 'contrast', 'saturation', 'hue'):
      value = getattr(self, name)
      if value < 0:
        raise ValueError(f'ViewConfig.{name} is a jitter strength >= 0, got {value!r}')
    if not 0 < self.cutout_size <= 1:
      raise ValueError(f'ViewConfig.cutout_size is a fraction of the side in (0, 1], '
                       f'got {self.cutout_size!r}')
    if self.hue > 0.5:
      raise ValueError(f'ViewConfig.hue is a fraction of the colour wheel in [0, 0.5], '
                       f'got {self.hue!r}')


def augment_example(key: jax.Array, image: jax.Array, view: ViewConfig) -> jax.Array:
  """One view of one example: crop -> flip -> jitter -> grayscale -> blur -> solarize ->
  cutout -> rotation.

  Args:
    key: PRNG key for this example.
    image: [H, W, C] float in [0, 1] (or uint8).
    view: static configuration.

  Returns:
    [out_size, out_size, C] float32 in [0, 1].
  """
  image = to_float(image)
  u = jax.random.uniform(key, (_CROP_DRAWS + _JITTER_DRAWS + _BLUR_DRAWS + 3,))
  u_crop, u_jitter, u_blur, u_flip, u_gray, u_solarize = jnp.split(
      u, np.cumsum([_CROP_DRAWS, _JITTER_DRAWS, _BLUR_DRAWS, 1, 1]))
  x = _resized_crop(u_crop, image, out_size=view.out_size, scale=view.crop_scale,
                    ratio=view.crop_ratio)
  x = _maybe_apply(u_flip[0], view.flip_prob, lambda y: y[:, ::-1], x)
  x = _color_jitter(u_jitter, x, prob=view.jitter_prob, brightness=view.brightness,
                    contrast=view.contrast, saturation=view.saturation, hue=view.hue)
  if x.shape[-1] == 3:
    x = _maybe_apply(u_gray[0], view.grayscale_prob, to_grayscale, x)
  x = _blur(u_blur, x, prob=view.blur_prob, sigma=view.blur_sigma)
  x = _maybe_apply(u_solarize[0], view.solarize_prob, solarize, x)
  if view.cutout_prob > 0 or view.rotate_prob > 0:
    # Their own draws, from a key of their own: views without them keep the exact random
    # numbers (and outputs) they had before these transformations existed.
    u_cutout, u_rotate = jnp.split(jax.random.uniform(jax.random.fold_in(key, 1), (5,)), [3])
    x = _cutout(u_cutout, x, prob=view.cutout_prob, size_fraction=view.cutout_size)
    x = _rotate(u_rotate, x, prob=view.rotate_prob)
  return x


def _check_images(images: jax.Array) -> None:
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f'images must be [B, H, W, C] with C = 1 or 3, got shape {images.shape}')


def augment_view(key: jax.Array, images: jax.Array, view: ViewConfig) -> jax.Array:
  """One augmented view of a batch, one key per example.

  Args:
    key: PRNG key for the batch.
    images: [B, H, W, C] uint8 in [0, 255] or float in [0, 1], C = 1 or 3.
    view: static configuration (hashable; pass as a static argument under `jax.jit`).

  Returns:
    [B, out_size, out_size, C] float32 in [0, 1].
  """
  _check_images(images)
  return map_examples(functools.partial(augment_example, view=view), key, to_float(images))


def augment_views(key: jax.Array, images: jax.Array, views: tuple[ViewConfig, ...]
                  ) -> tuple[jax.Array, ...]:
  """Several views of a batch; view i uses `jax.random.fold_in(key, i)`.

  View i therefore does not depend on how many views follow it.

  Args:
    key: PRNG key for the batch.
    images: [B, H, W, C] uint8 or float in [0, 1].
    views: static tuple of configurations.

  Returns:
    Tuple with one [B, out_size_i, out_size_i, C] float32 array per view.
  """
  return tuple(augment_view(jax.random.fold_in(key, i), images, view)
               for i, view in enumerate(views))


def eval_view(images: jax.Array, out_size: int) -> jax.Array:
  """Deterministic evaluation view: the whole image resized to out_size.

  Args:
    images: [B, H, W, C] uint8 or float in [0, 1].
    out_size: output side.

  Returns:
    [B, out_size, out_size, C] float32 in [0, 1].
  """
  _check_images(images)
  return center_resize(to_float(images), out_size=out_size)
