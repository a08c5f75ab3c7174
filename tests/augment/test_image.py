"""Tests for jssl.augment.image and jssl.augment.presets."""

import colorsys
import dataclasses
import functools
import os
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.augment import image as image_lib
from jssl.augment import presets

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _images(channels, batch=4, size=12, seed=0):
  return np.random.RandomState(seed).rand(batch, size, size, channels).astype(np.float32)


def _run(op, key, images, **kwargs):
  return np.asarray(image_lib.map_examples(functools.partial(op, **kwargs), key, images))


# Every random op with its probability set to 1 and strong settings.
_OPS = {
    'crop_down': (image_lib.random_resized_crop, dict(out_size=8)),
    'crop_up': (image_lib.random_resized_crop, dict(out_size=16)),
    'flip': (image_lib.random_flip, dict(prob=1.0)),
    'jitter': (image_lib.color_jitter,
               dict(prob=1.0, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2)),
    'grayscale': (image_lib.random_grayscale, dict(prob=1.0)),
    'blur': (image_lib.random_blur, dict(prob=1.0)),
    'solarize': (image_lib.random_solarize, dict(prob=1.0)),
}


@pytest.mark.parametrize('channels', [1, 3])
@pytest.mark.parametrize('name', sorted(_OPS))
def test_op_shape_dtype_range(name, channels):
  op, kwargs = _OPS[name]
  images = _images(channels)
  out = _run(op, jax.random.key(0), images, **kwargs)
  size = kwargs.get('out_size', images.shape[1])
  chex.assert_shape(out, (4, size, size, channels))
  assert out.dtype == np.float32
  chex.assert_tree_all_finite(out)
  assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize('name', ['crop_down', 'jitter', 'blur'])
def test_op_determinism(name):
  op, kwargs = _OPS[name]
  images = _images(3)
  a = _run(op, jax.random.key(1), images, **kwargs)
  b = _run(op, jax.random.key(1), images, **kwargs)
  c = _run(op, jax.random.key(2), images, **kwargs)
  np.testing.assert_array_equal(a, b)
  for i in range(images.shape[0]):
    assert not np.allclose(a[i], c[i])
  # One key per example: examples with identical pixels still get different augmentations.
  same = np.repeat(images[:1], 4, axis=0)
  out = _run(op, jax.random.key(1), same, **kwargs)
  assert not np.allclose(out[0], out[1])


@pytest.mark.parametrize('channels', [1, 3])
@pytest.mark.parametrize('name', ['flip', 'jitter', 'grayscale', 'blur', 'solarize'])
def test_prob_zero_is_identity(name, channels):
  op, kwargs = _OPS[name]
  images = _images(channels)
  out = _run(op, jax.random.key(0), images, **{**kwargs, 'prob': 0.0})
  np.testing.assert_array_equal(out, images)


def test_flip():
  images = _images(3, batch=16)
  out = _run(image_lib.random_flip, jax.random.key(0), images, prob=1.0)
  np.testing.assert_array_equal(out, images[:, :, ::-1])
  out = _run(image_lib.random_flip, jax.random.key(0), images, prob=0.5)
  flipped = [np.array_equal(o, x[:, ::-1]) for o, x in zip(out, images)]
  kept = [np.array_equal(o, x) for o, x in zip(out, images)]
  assert all(f != k for f, k in zip(flipped, kept))
  assert 0 < sum(flipped) < 16


def test_grayscale_is_luma():
  images = _images(3)
  out = _run(image_lib.random_grayscale, jax.random.key(0), images, prob=1.0)
  luma = 0.299 * images[..., 0] + 0.587 * images[..., 1] + 0.114 * images[..., 2]
  for c in range(3):
    np.testing.assert_allclose(out[..., c], luma, atol=1e-6)


def test_solarize_math():
  images = _images(3)
  images[0, 0, 0] = [0.0, 0.5, 1.0]
  out = _run(image_lib.random_solarize, jax.random.key(0), images, prob=1.0)
  np.testing.assert_allclose(out, np.where(images < 0.5, images, 1.0 - images), atol=1e-7)
  np.testing.assert_allclose(out[0, 0, 0], [0.0, 0.5, 0.0])


@pytest.mark.parametrize('factor', [0.3, 1.0, 1.7])
def test_adjust_math_against_numpy(factor):
  x = _images(3, batch=1)[0]
  luma = x @ np.array([0.299, 0.587, 0.114], np.float32)
  np.testing.assert_allclose(image_lib.adjust_brightness(x, factor),
                             np.clip(x * factor, 0, 1), atol=1e-6)
  np.testing.assert_allclose(image_lib.adjust_contrast(x, factor),
                             np.clip(factor * x + (1 - factor) * luma.mean(), 0, 1), atol=1e-6)
  np.testing.assert_allclose(image_lib.adjust_saturation(x, factor),
                             np.clip(factor * x + (1 - factor) * luma[..., None], 0, 1),
                             atol=1e-6)


def test_hsv_against_colorsys():
  x = _images(3, batch=1)[0]
  expected = np.array([[colorsys.rgb_to_hsv(*p) for p in row] for row in x])
  np.testing.assert_allclose(image_lib.rgb_to_hsv(x), expected, atol=1e-6)
  np.testing.assert_allclose(image_lib.hsv_to_rgb(expected.astype(np.float32)), x, atol=1e-6)
  grey = np.full((2, 2, 3), 0.4, np.float32)
  np.testing.assert_allclose(image_lib.rgb_to_hsv(grey)[..., :2], 0.0)
  red = np.array([[[1.0, 0.0, 0.0]]], np.float32)
  np.testing.assert_allclose(image_lib.adjust_hue(red, 1 / 3), [[[0.0, 1.0, 0.0]]], atol=1e-6)
  np.testing.assert_allclose(image_lib.adjust_hue(red, -1 / 3), [[[0.0, 0.0, 1.0]]], atol=1e-6)
  np.testing.assert_allclose(image_lib.adjust_hue(x, 0.0), x, atol=1e-6)


def test_brightness_jitter_factor_range():
  images = 0.1 + 0.4 * _images(3, batch=16)  # In [0.1, 0.5]: never clipped by a factor <= 2.
  out = _run(image_lib.color_jitter, jax.random.key(0), images, prob=1.0, brightness=0.5)
  ratios = out / images
  per_example = ratios.reshape(16, -1)
  np.testing.assert_allclose(per_example, per_example[:, :1] * np.ones_like(per_example),
                             rtol=1e-5)
  assert np.all(per_example >= 0.5 - 1e-6) and np.all(per_example <= 1.5 + 1e-6)
  assert np.std(per_example[:, 0]) > 0.1  # The factors vary between examples.


def test_jitter_zero_strengths_is_identity():
  for channels in (1, 3):
    images = _images(channels)
    out = _run(image_lib.color_jitter, jax.random.key(0), images, prob=1.0)
    np.testing.assert_array_equal(out, images)
  # Saturation and hue are no-ops on one channel.
  images = _images(1)
  out = _run(image_lib.color_jitter, jax.random.key(0), images, prob=1.0, saturation=0.8,
             hue=0.2)
  np.testing.assert_array_equal(out, images)


def test_jitter_random_order():
  """Each example applies brightness and contrast in one of the two orders; both orders occur."""
  images = _images(3, batch=16)
  key = jax.random.key(3)
  out = _run(image_lib.color_jitter, key, images, prob=1.0, brightness=0.8, contrast=0.8)
  orders = []
  for k, x, o in zip(jax.random.split(key, 16), images, out):
    u = np.asarray(jax.random.uniform(k, (image_lib._JITTER_DRAWS,)))
    b, c = 0.2 + 1.6 * u[1], 0.2 + 1.6 * u[2]
    bc = image_lib.adjust_contrast(image_lib.adjust_brightness(x, b), c)
    cb = image_lib.adjust_brightness(image_lib.adjust_contrast(x, c), b)
    matches = [np.allclose(o, bc, atol=1e-5), np.allclose(o, cb, atol=1e-5)]
    assert any(matches)
    if not np.allclose(bc, cb, atol=1e-4):  # Without clipping the two orders agree.
      assert sum(matches) == 1
      orders.append(matches[0])
  assert len(orders) >= 4 and 0 < sum(orders) < len(orders)


def test_blur():
  constant = np.full((2, 16, 16, 3), 0.3, np.float32)
  out = _run(image_lib.random_blur, jax.random.key(0), constant, prob=1.0)
  np.testing.assert_allclose(out, constant, atol=1e-6)
  noise = _images(1, batch=4, size=32)
  out = _run(image_lib.random_blur, jax.random.key(0), noise, prob=1.0, sigma=(1.0, 2.0))
  assert np.all(out.reshape(4, -1).var(axis=1) < 0.5 * noise.reshape(4, -1).var(axis=1))


def test_gaussian_blur_against_numpy():
  x = _images(1, batch=1, size=10)[0]
  sigma, size = 1.3, 5
  taps = np.exp(-0.5 * (np.arange(-2, 3) / sigma) ** 2)
  taps /= taps.sum()
  padded = np.pad(x, ((2, 2), (2, 2), (0, 0)), mode='reflect')
  expected = np.zeros_like(x)
  for i in range(size):
    for j in range(size):
      expected += taps[i] * taps[j] * padded[i:i + 10, j:j + 10]
  out = image_lib.gaussian_blur(x, sigma, kernel_size=size)
  np.testing.assert_allclose(out, expected, atol=1e-6)
  assert [image_lib.blur_kernel_size(s) for s in (8, 16, 32, 96, 224)] == [3, 3, 3, 9, 23]


@pytest.mark.parametrize('out_size', [8, 12, 20])
def test_full_crop_equals_resize(out_size):
  images = _images(3)
  out = _run(image_lib.random_resized_crop, jax.random.key(0), images, out_size=out_size,
             scale=(1.0, 1.0), ratio=(1.0, 1.0))
  resized = jax.image.resize(images, (4, out_size, out_size, 3), 'bilinear')
  np.testing.assert_allclose(out, resized, atol=1e-5)
  np.testing.assert_allclose(out, image_lib.eval_view(images, out_size), atol=1e-5)
  if out_size == 12:
    np.testing.assert_allclose(out, images, atol=1e-6)


def test_crop_geometry():
  """On ramps x / (W - 1) and y / (H - 1) a crop's slopes give its width and height."""
  size, out_size = 16, 32
  ramp = np.arange(size, dtype=np.float32) / (size - 1)
  image = np.zeros((size, size, 3), np.float32)
  image[..., 0] = ramp[None, :]
  image[..., 1] = ramp[:, None]
  images = np.repeat(image[None], 4, axis=0)
  out = _run(image_lib.random_resized_crop, jax.random.key(0), images, out_size=out_size,
             scale=(0.25, 0.25), ratio=(2.0, 2.0))
  crop_w, crop_h = np.sqrt(64 * 2.0), np.sqrt(64 / 2.0)
  # Interior pixels only: at the image border bilinear sampling clamps to the edge pixel.
  dx = np.diff(out[:, :, 3:-3, 0], axis=2)
  dy = np.diff(out[:, 3:-3, :, 1], axis=1)
  np.testing.assert_allclose(dx, crop_w / out_size / (size - 1), atol=1e-5)
  np.testing.assert_allclose(dy, crop_h / out_size / (size - 1), atol=1e-5)
  np.testing.assert_allclose(np.diff(out[..., 0], axis=1), 0.0, atol=1e-6)
  left = out[:, 0, 1, 0] * (size - 1) + 0.5 - 1.5 * crop_w / out_size
  assert np.all(left >= -1e-4) and np.all(left <= size - crop_w + 1e-4)
  assert np.std(left) > 0.1  # The offsets are random.


def test_to_float_and_eval_view():
  images = np.random.RandomState(0).randint(0, 256, (2, 8, 8, 1)).astype(np.uint8)
  np.testing.assert_allclose(image_lib.to_float(images), images / 255.0, atol=1e-7)
  out = image_lib.eval_view(images, 16)
  chex.assert_shape(out, (2, 16, 16, 1))
  np.testing.assert_array_equal(out, image_lib.eval_view(images, 16))
  np.testing.assert_allclose(out, jax.image.resize(images / 255.0, (2, 16, 16, 1), 'bilinear'),
                             atol=1e-6)
  with pytest.raises(ValueError, match=r'\[B, H, W, C\]'):
    image_lib.eval_view(images[0], 16)


@pytest.mark.parametrize('channels, preset', [(3, 'byol'), (1, 'small')])
def test_augment_views(channels, preset):
  images = np.random.RandomState(0).randint(0, 256, (4, 8, 8, channels)).astype(np.uint8)
  views = presets.get_views(preset, out_size=16)
  augment = jax.jit(image_lib.augment_views, static_argnames='views')
  first, second = augment(jax.random.key(0), images, views=views)
  for view in (first, second):
    chex.assert_shape(view, (4, 16, 16, channels))
    assert view.dtype == jnp.float32
    assert float(view.min()) >= 0.0 and float(view.max()) <= 1.0
  assert not np.allclose(first, second)


def test_view_independent_of_later_views():
  images = np.random.RandomState(0).randint(0, 256, (4, 8, 8, 3)).astype(np.uint8)
  crop = image_lib.ViewConfig(out_size=8)
  flip = image_lib.ViewConfig(out_size=8, crop_scale=(1.0, 1.0), flip_prob=0.5)
  both = image_lib.augment_views(jax.random.key(0), images, (crop, flip))
  # Typed and raw keys give the same numbers.
  (alone,) = image_lib.augment_views(jax.random.PRNGKey(0), images, (crop,))
  np.testing.assert_array_equal(alone, both[0])
  np.testing.assert_array_equal(
      both[0], image_lib.augment_view(jax.random.fold_in(jax.random.key(0), 0), images, crop))


def test_jit_traces_once():
  views = presets.get_views('simclr', out_size=8)[:1]

  @jax.jit
  @chex.assert_max_traces(n=1)
  def augment(key, images):
    return image_lib.augment_views(key, images, views)

  for seed in range(3):
    images = np.random.RandomState(seed).randint(0, 256, (2, 8, 8, 3)).astype(np.uint8)
    out = augment(jax.random.key(seed), images)
    chex.assert_tree_all_finite(out)


def test_view_config_validation():
  view = image_lib.ViewConfig(out_size=8, crop_scale=[0.2, 1.0])
  assert view.crop_scale == (0.2, 1.0)
  hash(view)
  with pytest.raises(ValueError, match='flip_prob'):
    image_lib.ViewConfig(out_size=8, flip_prob=1.5)
  with pytest.raises(ValueError, match='crop_scale'):
    image_lib.ViewConfig(out_size=8, crop_scale=(0.5, 0.2))
  with pytest.raises(ValueError, match='hue'):
    image_lib.ViewConfig(out_size=8, hue=0.7)
  with pytest.raises(ValueError, match='out_size'):
    image_lib.ViewConfig(out_size=0)


def test_presets():
  assert set(presets.PRESETS) == {'simclr', 'simclr_cifar', 'byol', 'small', 'crop_flip'}
  simclr = presets.get_views('simclr', out_size=32)
  assert len(simclr) == 2 and simclr[0] == simclr[1]
  assert (simclr[0].brightness, simclr[0].hue, simclr[0].blur_prob) == (0.8, 0.2, 0.5)
  cifar = presets.get_views('simclr_cifar', out_size=32)[0]
  assert (cifar.brightness, cifar.saturation, cifar.hue, cifar.blur_prob) == (0.4, 0.4, 0.1, 0)
  byol = presets.get_views('byol', out_size=32)
  assert [(v.blur_prob, v.solarize_prob) for v in byol] == [(1.0, 0.0), (0.1, 0.2)]
  assert byol[0].saturation == 0.2
  small = presets.get_views('small', out_size=16, flip_prob=0.0)
  assert all(v.out_size == 16 and v.flip_prob == 0.0 and v.crop_scale == (0.2, 1.0)
             for v in small)
  with pytest.raises(ValueError, match=r"'blurr_prob'.*valid fields.*blur_prob"):
    presets.get_views('simclr', out_size=8, blurr_prob=0.0)
  with pytest.raises(ValueError, match=r"'simclr2'.*byol"):
    presets.get_views('simclr2', out_size=8)
  with pytest.raises(ValueError, match='jitter_prob'):
    presets.get_views('simclr', out_size=8, jitter_prob=2.0)
  assert dataclasses.replace(byol[1], blur_prob=1.0) != byol[1]


_SHARDING_SCRIPT = textwrap.dedent("""
    import functools
    import jax
    import numpy as np
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
    from jssl.augment import image as image_lib, presets

    assert jax.device_count() == 8, jax.devices()
    key = jax.random.key(42)
    images = np.random.RandomState(0).randint(0, 256, (16, 12, 12, 3)).astype(np.uint8)
    # BYOL's second view uses every op (blur, solarize with p < 1); one view keeps compiles short.
    views = presets.get_views('byol', out_size=8)[1:]
    augment = jax.jit(image_lib.augment_views, static_argnames='views')
    single = augment(key, jax.device_put(images, jax.devices()[0]), views=views)
    for axis_type in (AxisType.Explicit, AxisType.Auto):
      sharding = NamedSharding(jax.make_mesh((8,), ('data',), (axis_type,)), P('data'))
      sharded = augment(key, jax.device_put(images, sharding), views=views)
      for a, b in zip(single, sharded):
        assert len(b.sharding.device_set) == 8, b.sharding
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Eager (op by op) on an Explicit mesh: the per-example keys must follow the batch sharding.
    flip = functools.partial(image_lib.map_examples,
                             functools.partial(image_lib.random_flip, prob=0.5), key)
    explicit = NamedSharding(jax.make_mesh((8,), ('data',), (AxisType.Explicit,)), P('data'))
    np.testing.assert_array_equal(np.asarray(flip(jax.device_put(images, explicit))),
                                  np.asarray(flip(images)))
    print('OK')
""")


def test_sharded_equals_single_device():
  env = dict(os.environ)
  flag = '--xla_force_host_platform_device_count=8'
  if flag not in env.get('XLA_FLAGS', ''):
    env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') + ' ' + flag).strip()
  env['JAX_PLATFORMS'] = 'cpu'
  env['PYTHONPATH'] = os.pathsep.join(filter(None, [_REPO_ROOT, env.get('PYTHONPATH')]))
  result = subprocess.run([sys.executable, '-c', _SHARDING_SCRIPT], env=env, cwd=_REPO_ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0 and 'OK' in result.stdout, result.stdout + result.stderr
