"""RotNet: rotations (undone exactly, bilinear ones against the exact quarter turns and a hand-
placed point), the loss against a NumPy cross-entropy on separately rotated copies, config
errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.augment.image import rotate
from jssl.augment.image import rotate_bilinear
from jssl.config import ConfigError
from jssl.methods import TrainInfo
from jssl.methods import common
from jssl.methods import rotation
from tiny import cross_entropy, initialise, tiny_config

INFO = TrainInfo(num_examples=64, num_classes=10, image_channels=1, num_steps=10)


def _images(shape=(3, 9, 9, 2), seed=0):
  return jax.random.uniform(jax.random.key(seed), shape)


def test_a_rotated_image_rotated_back_equals_the_input():
  x = _images()
  for angle in (90, 180, 270):
    np.testing.assert_array_equal(rotate(rotate(x, angle), 360 - angle), x)
  np.testing.assert_array_equal(rotate(x, 0), x)
  np.testing.assert_array_equal(rotate(x, 90), np.rot90(np.asarray(x), 1, axes=(1, 2)))


def test_bilinear_rotation_agrees_with_quarter_turns_and_moves_a_point_as_drawn():
  x = _images()
  for angle in (0, 90, 180, 270):  # the sampling path where it must be exact
    np.testing.assert_allclose(rotate_bilinear(x, angle), rotate(x, angle), atol=1e-5)
  # Bilinear sampling is exact on a linear ramp, so a turn by 45 degrees must give the ramp
  # at the rotated coordinates: output (y, x) (centred, rows down) reads the input at
  # (cos a * y + sin a * x, -sin a * y + cos a * x).
  side, centre, a = 9, 4.0, math.radians(45)
  y, x = np.meshgrid(np.arange(side) - centre, np.arange(side) - centre, indexing='ij')
  ramp = lambda yy, xx: 0.3 * yy - 0.7 * xx + 2.0
  out = np.asarray(rotate(jnp.asarray(ramp(y, x)[None, :, :, None], jnp.float32), 45))[0, ..., 0]
  src_y, src_x = np.cos(a) * y + np.sin(a) * x, -np.sin(a) * y + np.cos(a) * x
  inside = (np.abs(src_y) <= centre - 1) & (np.abs(src_x) <= centre - 1)  # all 4 neighbours in
  assert inside.sum() > 20
  np.testing.assert_allclose(out[inside], ramp(src_y, src_x)[inside], atol=1e-5)
  # Counter-clockwise: what was right of the centre is now above-right of it.
  image = np.zeros((1, side, side, 1), np.float32)
  image[0, 4, 8, 0] = 1.0
  out = np.asarray(rotate(jnp.asarray(image), 45))[0, :, :, 0]
  assert np.unravel_index(np.argmax(out), out.shape) in ((1, 7), (1, 6), (2, 7))
  # The corners that leave the square are zeros.
  assert np.asarray(rotate(jnp.ones((1, 9, 9, 1)), 45))[0, 0, 0, 0] == 0.0


@pytest.mark.parametrize('num_rotations', [2, 4, 8])
def test_rotated_copies_are_interleaved_with_their_labels(num_rotations):
  x = _images((2, 8, 8, 1))
  copies, labels = rotation.rotated_copies(x, num_rotations)
  assert copies.shape == (2 * num_rotations, 8, 8, 1)
  for b in range(2):
    for k, angle in enumerate(rotation.ANGLES[num_rotations]):
      row = b * num_rotations + k
      assert labels[row] == k
      np.testing.assert_array_equal(copies[row], rotate(x[b:b + 1], angle)[0])


def test_loss_is_the_cross_entropy_of_the_rotation_index():
  config = tiny_config('rotation')
  method = rotation.create(config, INFO)
  params, batch_stats, extra, batch = initialise(method)
  value, out = jax.jit(method.loss)(params, batch_stats, extra, batch, jnp.int32(0),
                                    jax.random.key(2))
  # Reference: the four quarter turns made with NumPy, grouped by rotation rather than by
  # example (BatchNorm's statistics do not depend on the order), through the same network.
  view = np.asarray(batch.views[0])
  grouped = np.concatenate([np.rot90(view, k, axes=(1, 2)) for k in range(4)])
  labels = np.repeat(np.arange(4), view.shape[0])
  model = rotation.build_model(config)
  (h, logits, _), _ = jax.jit(lambda p: common.apply_train(model, p, batch_stats, grouped))(
      params)
  logits = np.asarray(logits, np.float64)
  np.testing.assert_allclose(value, cross_entropy(logits, labels), rtol=1e-5)
  np.testing.assert_allclose(out.metrics['rotation_accuracy'],
                             np.mean(logits.argmax(1) == labels), atol=1e-7)
  np.testing.assert_allclose(out.features, h[:view.shape[0]], rtol=1e-5, atol=1e-5)
  assert out.embeddings[0].shape == out.embeddings[1].shape == out.features.shape
  # Gradients reach the encoder and the classifier.
  grads = jax.grad(lambda p: method.loss(p, batch_stats, extra, batch, jnp.int32(0),
                                         jax.random.key(2))[0])(params)
  for part in ('encoder', 'projector'):
    assert sum(float(jnp.sum(g**2)) for g in jax.tree_util.tree_leaves(grads[part])) > 0


@pytest.mark.parametrize('field, value, message', [
    ('rotation.num_rotations', 3, 'num_rotations=3 is not supported'),
    ('model.projection_layers', 0, 'projection_layers=0 must be >= 1'),
])
def test_bad_settings_are_clear_errors(field, value, message):
  config = tiny_config('rotation')
  parent, _, key = field.rpartition('.')
  config[parent][key] = value
  with pytest.raises(ConfigError, match=message):
    rotation.create(config, INFO)
