"""Image grids written as PNG files (samples, reconstructions)."""

from __future__ import annotations

import os

import numpy as np


def image_grid(images: np.ndarray, *, columns: int, pad: int = 1) -> np.ndarray:
  """Tiles images into one uint8 picture.

  Args:
    images: [N, H, W, C] floats in [0, 1] (clipped) or uint8, C = 1 or 3.
    columns: images per row; rows = ceil(N / columns), the last one padded with white.
    pad: white pixels between images.

  Returns:
    uint8 [rows * (H + pad) + pad, columns * (W + pad) + pad, C].
  """
  images = np.asarray(images)
  if images.dtype != np.uint8:
    images = np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)
  n, h, w, c = images.shape
  rows = -(-n // columns)
  grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, np.uint8)
  for i in range(n):
    r, col = divmod(i, columns)
    top, left = pad + r * (h + pad), pad + col * (w + pad)
    grid[top:top + h, left:left + w] = images[i]
  return grid


def save_grid(path: str, images: np.ndarray, *, columns: int = 8, scale: int = 1) -> str:
  """Writes `image_grid(images, columns=columns)` to `path` as a PNG, each pixel `scale` x
  `scale` (small images are hard to see at 1:1); returns the path. Written atomically."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  grid = image_grid(images, columns=columns)
  if scale > 1:
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
  picture = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + '.tmp'
  picture.save(tmp, format='PNG')
  os.replace(tmp, path)
  return path
