"""A PNG grid of original images and their augmented views, for looking at augmentations.

    python -m jssl.augment.grid --preset=simclr --dataset=digits --out=grid.png \
        [--out_size=16] [--num_images=8] [--seed=0] [--data_dir=...] [--override blur_prob=0]
"""

from __future__ import annotations

import argparse
import ast
from typing import Sequence

import jax
# A bare Figure (no pyplot) renders PNGs with Agg and never touches the global backend, so a
# notebook importing this module keeps its own.
from matplotlib.figure import Figure
import numpy as np

from jssl.augment import image as image_lib
from jssl.augment import presets

_CELL_INCHES = 1.2


def save_augmentation_grid(images_uint8: np.ndarray, views: Sequence[image_lib.ViewConfig],
                           path: str, *, seed: int = 0, num_images: int = 8) -> str:
  """Saves a PNG with one row per image: the original, then one column per view.

  Args:
    images_uint8: uint8 [B, H, W, C], C = 1 or 3; the first `num_images` are shown.
    views: view configurations; the original is resized to the largest out_size.
    path: where the PNG is written.
    seed: seed of the augmentation key.
    num_images: number of rows (at most B).

  Returns:
    `path`.
  """
  images_uint8 = np.asarray(images_uint8)
  if images_uint8.ndim != 4 or images_uint8.dtype != np.uint8:
    raise ValueError(f'images_uint8 must be uint8 [B, H, W, C], got {images_uint8.dtype} '
                     f'{images_uint8.shape}')
  if not views:
    raise ValueError('views must hold at least one ViewConfig')
  images_uint8 = images_uint8[:num_images]
  num_rows = images_uint8.shape[0]
  views = tuple(views)
  originals = image_lib.eval_view(images_uint8, max(view.out_size for view in views))
  augmented = jax.jit(image_lib.augment_views, static_argnames='views')(
      jax.random.key(seed), images_uint8, views=views)
  columns = [np.asarray(originals)] + [np.asarray(view) for view in augmented]
  titles = ['original'] + [f'view {i + 1}' for i in range(len(views))]

  num_cols = len(columns)
  fig = Figure(figsize=(num_cols * _CELL_INCHES, num_rows * _CELL_INCHES))
  axes = fig.subplots(num_rows, num_cols, squeeze=False)
  for row in range(num_rows):
    for col, column in enumerate(columns):
      ax = axes[row, col]
      cell = np.clip(column[row], 0.0, 1.0)
      if cell.shape[-1] == 1:
        ax.imshow(cell[..., 0], cmap='gray', vmin=0.0, vmax=1.0, interpolation='nearest')
      else:
        ax.imshow(cell, interpolation='nearest')
      ax.set_xticks([])
      ax.set_yticks([])
      if row == 0:
        ax.set_title(titles[col], fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  return path


def _parse_override(text: str) -> tuple[str, object]:
  """'blur_prob=0.5' -> ('blur_prob', 0.5); values are Python literals."""
  name, sep, value = text.partition('=')
  if not sep:
    raise argparse.ArgumentTypeError(f'--override must look like field=value, got {text!r}')
  try:
    return name, ast.literal_eval(value)
  except (ValueError, SyntaxError) as e:
    raise argparse.ArgumentTypeError(f'--override {text!r}: {value!r} is not a literal') from e


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--preset', required=True, choices=sorted(presets.PRESETS))
  parser.add_argument('--dataset', required=True, help='a name jssl.data.load_dataset knows')
  parser.add_argument('--out', default='grid.png', help='PNG path')
  parser.add_argument('--out_size', type=int, default=None,
                      help='side of the views; default: the dataset image side')
  parser.add_argument('--num_images', type=int, default=8)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--data_dir', default=None)
  parser.add_argument('--override', type=_parse_override, action='append', default=[],
                      help='ViewConfig field=value applied to every view (repeatable)')
  args = parser.parse_args(argv)

  from jssl.data import load_dataset  # pylint: disable=g-import-not-at-top  # Lazy: heavy.
  dataset = load_dataset(args.dataset, data_dir=args.data_dir)
  images = dataset.train.get_batch(np.arange(args.num_images))['image']
  out_size = args.out_size or images.shape[1]
  views = presets.get_views(args.preset, out_size=out_size, **dict(args.override))
  save_augmentation_grid(images, views, args.out, seed=args.seed, num_images=args.num_images)
  print(f'Wrote {args.out}: {args.num_images} {args.dataset} images, preset {args.preset!r}, '
        f'out_size {out_size}')


if __name__ == '__main__':
  main()
