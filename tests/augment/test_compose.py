"""Cutout, rotation and `augment.compose` (views made of named transformations, SimCLR Fig. 5)."""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jssl import augment
from jssl.augment import image as image_lib
from jssl.config import ConfigError
from jssl.config import load_config
from jssl.config import validate_config


def _images(seed=0, n=6, side=8):
  return np.random.RandomState(seed).randint(0, 256, (n, side, side, 1)).astype(np.uint8)


def test_cutout_erases_exactly_the_square_inside_the_image():
  image = jnp.linspace(0.0, 1.0, 6 * 6).reshape(6, 6, 1)
  out = np.asarray(augment.cutout(image, jnp.int32(-1), jnp.int32(4), 3))
  want = np.asarray(image).copy()
  want[0:2, 4:6] = 0.5  # rows -1..1 and columns 4..6, clipped to the image
  np.testing.assert_array_equal(out, want)


def test_rotate90_matches_numpy():
  image = jnp.arange(16.0).reshape(4, 4, 1)
  for k in range(4):
    np.testing.assert_array_equal(augment.rotate90(image, jnp.int32(k)),
                                  np.rot90(np.asarray(image), k))


def test_rotation_view_is_one_of_the_three_rotations():
  images = _images()
  view = image_lib.ViewConfig(out_size=8, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0),
                              rotate_prob=1.0)
  out = np.asarray(jax.jit(augment.augment_view, static_argnames='view')(
      jax.random.key(0), images, view))
  plain = np.asarray(augment.eval_view(images, 8))
  seen = set()
  for got, original in zip(out, plain):
    matches = [k for k in (1, 2, 3) if np.allclose(got, np.rot90(original, k), atol=1e-6)]
    assert matches, 'not a rotation by 90, 180 or 270 degrees'
    seen.update(matches)
  assert len(seen) >= 2  # the angle is random


def test_cutout_view_greys_a_square_per_example():
  images = _images(side=16)
  view = image_lib.ViewConfig(out_size=16, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0),
                              cutout_prob=1.0, cutout_size=0.25)
  out = np.asarray(augment.augment_view(jax.random.key(1), images, view))
  plain = np.asarray(augment.eval_view(images, 16))
  changed = np.any(out != plain, axis=-1)
  for mask, got in zip(changed, out):
    rows, cols = np.nonzero(mask)
    assert 0 < rows.size <= 16  # at most the 4x4 square
    assert rows.max() - rows.min() < 4 and cols.max() - cols.min() < 4
    np.testing.assert_array_equal(got[mask], 0.5)


def test_views_without_the_new_transformations_are_unchanged():
  # cutout/rotation draw from their own key only when enabled, so every existing preset
  # keeps its random numbers: enabling them with probability 0 changes nothing either.
  images = _images()
  view = augment.get_views('small', out_size=8)[0]
  base = augment.augment_view(jax.random.key(3), images, view)
  same = augment.augment_view(jax.random.key(3), images,
                              dataclasses.replace(view, cutout_prob=0.0, rotate_prob=0.0))
  np.testing.assert_array_equal(base, same)


def test_compose_views_builds_exactly_the_named_transformations():
  [none, _] = augment.compose_views('none', out_size=16)
  assert none == image_lib.ViewConfig(out_size=16, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
  [view, _] = augment.compose_views('crop+rotate', out_size=16)
  assert view.crop_scale == (0.2, 1.0) and view.rotate_prob == 1.0 and view.flip_prob == 0.5
  assert view.jitter_prob == 0.0 and view.cutout_prob == 0.0
  assert augment.compose_views('rotate+crop', out_size=16) == augment.compose_views(
      'crop+rotate', out_size=16)
  for bad in ('crop+crop', 'crop+foo', ''):
    with pytest.raises(ValueError, match='augment.compose'):
      augment.compose_views(bad, out_size=16)


def test_config_compose_replaces_the_preset_and_is_validated():
  config = load_config('experiments/configs/simclr.py')
  config.augment.compose = 'color'
  config.augment.jitter_prob = 1.0  # overrides still apply on top
  views = augment.views_from_config(config.augment, out_size=16)
  assert views[0].crop_scale == (1.0, 1.0) and views[0].jitter_prob == 1.0
  assert views[0].flip_prob == 0.0
  config.augment.compose = 'color+sobel'
  with pytest.raises(ConfigError, match="config.augment.compose='color\\+sobel'"):
    validate_config(config, device_count=1)
  assert isinstance(config.augment, ml_collections.ConfigDict)
