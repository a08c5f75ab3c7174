"""Tests for jssl.augment.grid."""

import sys
import types

import numpy as np
from PIL import Image
import pytest

from jssl.augment import grid
from jssl.augment import image as image_lib
from jssl.augment import presets


def _uint8_images(batch, size, channels, seed=0):
  return np.random.RandomState(seed).randint(0, 256, (batch, size, size, channels)).astype(
      np.uint8)


def _load_png(path):
  with Image.open(path) as png:
    assert png.format == 'PNG'
    return np.asarray(png.convert('RGB'))


def test_grid_colour(tmp_path):
  views = (image_lib.ViewConfig(out_size=8, flip_prob=0.5),
           image_lib.ViewConfig(out_size=8, grayscale_prob=1.0),
           image_lib.ViewConfig(out_size=12, crop_scale=(0.5, 1.0)))
  path = grid.save_augmentation_grid(_uint8_images(6, 10, 3), views, str(tmp_path / 'g.png'),
                                     num_images=4)
  pixels = _load_png(path)
  # One row per image (4) and one column per view plus the original (4), equal-sized cells.
  height, width, _ = pixels.shape
  assert abs(height / width - 1.0) < 0.05
  assert height >= 4 * 50
  assert pixels.std() > 10  # Not a blank figure.


def test_grid_grayscale_more_rows_than_images(tmp_path):
  views = presets.get_views('small', out_size=8)
  path = grid.save_augmentation_grid(_uint8_images(2, 8, 1), views, str(tmp_path / 'g.png'),
                                     num_images=8)
  height, width, _ = _load_png(path).shape
  assert abs(height / width - 2 / 3) < 0.05  # Only 2 rows exist; 3 columns.


def test_grid_rejects_float_images(tmp_path):
  with pytest.raises(ValueError, match='uint8'):
    grid.save_augmentation_grid(np.zeros((2, 8, 8, 1), np.float32),
                                presets.get_views('small', out_size=8), str(tmp_path / 'g.png'))


def test_main_with_fake_dataset(tmp_path, monkeypatch):
  images = _uint8_images(4, 8, 1)
  # Stands in for jssl.data: only `load_dataset(...).train.get_batch(indices)['image']` is used.
  train = types.SimpleNamespace(get_batch=lambda indices: {'image': images[indices]})
  dataset = types.SimpleNamespace(train=train)
  fake_data = types.ModuleType('jssl.data')
  fake_data.load_dataset = lambda name, *, data_dir=None: dataset
  monkeypatch.setitem(sys.modules, 'jssl.data', fake_data)
  out = tmp_path / 'cli.png'
  grid.main(['--preset=small', '--dataset=fake', f'--out={out}', '--num_images=2',
             '--override', 'flip_prob=0.0'])
  height, width, _ = _load_png(out).shape
  assert abs(height / width - 2 / 3) < 0.05
