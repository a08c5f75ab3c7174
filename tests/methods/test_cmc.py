"""CMC: sRGB -> Lab against known colours, the channel split (shapes, low + high == image),
negative sampling, the loss against a NumPy reference on the banks before the batch, the bank
update (which rows change and to what), no gradient into the banks, the NCE partition estimate,
config errors and a short digits run."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.config import ConfigError
from jssl.methods import Batch, TrainInfo, cmc, common
from tiny import tiny_config

BATCH = 8
NUM_EXAMPLES = 32
INFO = TrainInfo(num_examples=NUM_EXAMPLES, num_classes=10, image_channels=1, num_steps=10)


@pytest.mark.parametrize('rgb, lab', [
    ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 0.0, 0.0), (53.24, 80.09, 67.20)),
    ((0.0, 1.0, 0.0), (87.73, -86.18, 83.18)),
    ((0.0, 0.0, 1.0), (32.30, 79.19, -107.86)),
    ((0.5, 0.5, 0.5), (53.39, 0.0, 0.0)),
])
def test_rgb_to_lab_known_colours(rgb, lab):
  np.testing.assert_allclose(cmc.rgb_to_lab(jnp.asarray(rgb)), lab, atol=0.02)


def _lab_to_rgb(lab):
  """NumPy inverse of sRGB -> Lab (D65), written from the CIE / IEC definitions."""
  l, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
  fy = (l + 16) / 116
  f = np.stack([fy + a / 500, fy, fy - b / 200], axis=-1)
  delta = 6 / 29
  t = np.where(f > delta, f ** 3, 3 * delta ** 2 * (f - 4 / 29))
  xyz = t * np.array([0.95047, 1.0, 1.08883])
  to_rgb = np.linalg.inv(np.array([[0.4124564, 0.3575761, 0.1804375],
                                   [0.2126729, 0.7151522, 0.0721750],
                                   [0.0193339, 0.1191920, 0.9503041]]))
  linear = xyz @ to_rgb.T
  return np.where(linear > 0.0031308, 1.055 * np.abs(linear) ** (1 / 2.4) - 0.055,
                  12.92 * linear)


def test_rgb_to_lab_inverts_back_including_dark_colours():
  rgb = np.concatenate([np.random.default_rng(0).uniform(0, 1, (200, 3)),
                        np.random.default_rng(1).uniform(0, 0.03, (200, 3))])  # linear branches
  lab = np.asarray(cmc.rgb_to_lab(jnp.asarray(rgb, jnp.float32)), np.float64)
  np.testing.assert_allclose(_lab_to_rgb(lab), rgb, atol=2e-4)


def test_rgb_to_lab_keeps_leading_shape_and_has_finite_gradients():
  rgb = jax.random.uniform(jax.random.key(0), (2, 5, 5, 3)).at[0, 0, 0].set(0.0)
  assert cmc.rgb_to_lab(rgb).shape == (2, 5, 5, 3)
  grad = jax.grad(lambda x: jnp.sum(cmc.rgb_to_lab(x)))(rgb)
  assert np.all(np.isfinite(grad))


def test_colour_split_is_scaled_l_and_ab():
  images = jax.random.uniform(jax.random.key(0), (2, 6, 6, 3))
  l_view, ab_view = cmc.split_views(images, lowpass_sigma=1.0)
  assert l_view.shape == (2, 6, 6, 1) and ab_view.shape == (2, 6, 6, 2)
  lab = cmc.rgb_to_lab(images)
  np.testing.assert_allclose(l_view[..., 0] * 50 + 50, lab[..., 0], rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(ab_view * 110, lab[..., 1:], rtol=1e-5, atol=1e-4)
  assert np.all(np.abs(l_view) <= 1.0) and np.all(np.abs(ab_view) <= 1.0)


def test_grayscale_split_low_plus_high_is_the_image():
  images = jax.random.uniform(jax.random.key(0), (3, 16, 16, 1))
  lowpass_highpass = jax.jit(functools.partial(cmc.lowpass_highpass, sigma=1.5))
  low, high = lowpass_highpass(images)
  assert low.shape == high.shape == images.shape
  np.testing.assert_allclose(low + high, images, atol=1e-6)
  # The low-pass is smoother than the image; the residual of a constant image is zero.
  assert float(jnp.abs(jnp.diff(low, axis=1)).mean()) < 0.5 * float(
      jnp.abs(jnp.diff(images, axis=1)).mean())
  _, flat_high = lowpass_highpass(jnp.full((3, 16, 16, 1), 0.3))
  np.testing.assert_allclose(flat_high, 0.0, atol=1e-6)
  v1, v2 = jax.jit(functools.partial(cmc.split_views, lowpass_sigma=1.5))(images)
  np.testing.assert_allclose(v1, (low - 0.5) / 0.5, atol=1e-6)
  np.testing.assert_allclose(v2, high / 0.5, atol=1e-6)


def test_sample_other_rows_never_draws_the_anchor():
  index = jnp.array([0, 5, 9])
  rows = np.asarray(cmc.sample_other_rows(jax.random.key(0), index, num_examples=10,
                                          count=3000))
  assert rows.shape == (3, 3000) and rows.min() >= 0 and rows.max() <= 9
  for b, i in enumerate([0, 5, 9]):
    counts = np.bincount(rows[b], minlength=10)
    assert counts[i] == 0 and np.all(np.delete(counts, i) > 0)


def _config(**overrides):
  config = tiny_config('cmc', image_size=8)
  config.cmc.num_negatives = 5
  for key, value in overrides.items():
    config.cmc[key] = value
  return config


def _setup(config, info=INFO):
  method = cmc.create(config, info)
  image = jax.random.uniform(jax.random.key(0), (BATCH, 8, 8, info.image_channels))
  index = jnp.array([3, 17, 0, 31, 8, 22, 5, 12], jnp.int32)
  batch = Batch(views=(image,), label=jnp.zeros(BATCH, jnp.int32), index=index)
  params, batch_stats, extra = jax.jit(method.init)(jax.random.key(1), image)
  return method, params, batch_stats, extra, batch


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _naive_info_nce(anchor, positive, negatives, temperature):
  a, p, n = _unit(anchor), _unit(positive), _unit(negatives)
  total = 0.0
  for i in range(len(a)):
    logits = np.concatenate([[a[i] @ p[i]], n[i] @ a[i]]) / temperature
    total -= logits[0] - np.log(np.sum(np.exp(logits)))
  return total / len(a)


def _projections(config, params, batch_stats, image):
  """(z1, z2) of the two networks in training mode, computed outside the loss."""

  @jax.jit
  def project(params, batch_stats, image):
    x1, x2 = cmc.split_views(image, lowpass_sigma=config.cmc.lowpass_sigma)
    ((_, z1), (_, z2)), _ = common.apply_train(cmc.network(config), params, batch_stats, x1, x2)
    return z1, z2

  z1, z2 = project(params, batch_stats, image)
  return np.asarray(z1), np.asarray(z2)


def test_loss_uses_the_other_views_bank_before_the_update():
  config = _config()
  method, params, batch_stats, extra, batch = _setup(config)
  assert set(params) == {'encoder_1', 'projector_1', 'encoder_2', 'projector_2'}
  assert extra['bank_1'].shape == extra['bank_2'].shape == (NUM_EXAMPLES, 8)
  rng = jax.random.key(7)
  value, out = jax.jit(method.loss)(params, batch_stats, extra, batch, 0, rng)
  z1, z2 = _projections(config, params, batch_stats, batch.views[0])
  index = np.asarray(batch.index)
  rows = np.asarray(cmc.sample_other_rows(rng, batch.index, num_examples=NUM_EXAMPLES, count=5))
  bank_1, bank_2 = np.asarray(extra['bank_1']), np.asarray(extra['bank_2'])
  loss_12 = _naive_info_nce(z1, bank_2[index], bank_2[rows], 0.07)
  loss_21 = _naive_info_nce(z2, bank_1[index], bank_1[rows], 0.07)
  np.testing.assert_allclose(out.metrics['loss_1_to_2'], loss_12, rtol=2e-4)
  np.testing.assert_allclose(out.metrics['loss_2_to_1'], loss_21, rtol=2e-4)
  np.testing.assert_allclose(value, loss_12 + loss_21, rtol=2e-4)

  # Bank update: the batch's rows move halfway to the new unit embeddings, the rest stay.
  for name, bank, z in (('bank_1', bank_1, z1), ('bank_2', bank_2, z2)):
    new = np.asarray(out.extra[name])
    expected = _unit(0.5 * bank[index] + 0.5 * _unit(z))
    np.testing.assert_allclose(new[index], expected, atol=1e-5)
    untouched = np.setdiff1d(np.arange(NUM_EXAMPLES), index)
    np.testing.assert_array_equal(new[untouched], bank[untouched])

  # Online-probe features: both encoders' representations, concatenated.
  assert out.features.shape == (BATCH, method.features_dim) == (BATCH, 16)
  features = jax.jit(method.encode)(params, batch_stats, batch.views[0])
  assert features.shape == (BATCH, 16)


def test_banks_get_no_gradient():
  method, params, batch_stats, extra, batch = _setup(_config())

  def loss_of_extra(extra):
    return method.loss(params, batch_stats, extra, batch, 0, jax.random.key(7))[0]

  grads = jax.jit(jax.grad(loss_of_extra))(extra)
  for name in ('bank_1', 'bank_2'):
    np.testing.assert_array_equal(grads[name], 0.0)


def test_colour_images_use_l_and_ab_encoders():
  info = INFO._replace(image_channels=3)
  method, params, batch_stats, extra, batch = _setup(_config(), info)
  # First convolutions see 1 (L) and 2 (ab) input channels.
  kernels = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params)
             if 'kernel' in jax.tree_util.keystr(path) and leaf.ndim == 4]
  in_channels = sorted({k.shape[2] for k in kernels if k.shape[2] in (1, 2)})
  assert in_channels == [1, 2]
  value, out = jax.jit(method.loss)(params, batch_stats, extra, batch, 0, jax.random.key(7))
  assert np.isfinite(value) and out.features.shape == (BATCH, method.features_dim)


def test_nce_partition_is_estimated_at_step_zero_then_kept():
  config = _config(objective='nce')
  method, params, batch_stats, extra, batch = _setup(config)
  np.testing.assert_array_equal(extra['log_partition'], [0.0, 0.0])
  loss = jax.jit(method.loss)
  value, out = loss(params, batch_stats, extra, batch, 0, jax.random.key(7))
  estimate = np.asarray(out.extra['log_partition'])
  # log Z = log N + log mean exp(s) over the first batch's positive and negative scores.
  z1, z2 = _projections(config, params, batch_stats, batch.views[0])
  index = np.asarray(batch.index)
  rows = np.asarray(cmc.sample_other_rows(jax.random.key(7), batch.index,
                                          num_examples=NUM_EXAMPLES, count=5))
  for position, (z, bank) in enumerate(((z1, extra['bank_2']), (z2, extra['bank_1']))):
    bank = np.asarray(bank, np.float64)
    candidates = np.concatenate([bank[index][:, None], bank[rows]], axis=1)  # [B, 1 + K, D]
    scores = np.einsum('bd,bkd->bk', _unit(z), candidates) / 0.07
    expected = math.log(NUM_EXAMPLES) + np.log(np.mean(np.exp(scores)))
    np.testing.assert_allclose(estimate[position], expected, rtol=1e-4)
  assert np.isfinite(value)
  _, later = loss(params, batch_stats, out.extra, batch, 1, jax.random.key(8))
  np.testing.assert_array_equal(later.extra['log_partition'], estimate)


@pytest.mark.parametrize('overrides, match', [
    ({'objective': 'ranking'}, 'config.cmc.objective'),
    ({'temperature': 0.0}, 'config.cmc.temperature'),
    ({'bank_momentum': 1.0}, 'config.cmc.bank_momentum'),
    ({'num_negatives': 0}, 'config.cmc.num_negatives'),
    ({'lowpass_sigma': 4.0}, 'config.cmc.lowpass_sigma'),
])
def test_config_errors(overrides, match):
  with pytest.raises(ConfigError, match=match):
    cmc.create(_config(**overrides), INFO)


def test_colour_distorting_augmentation_is_rejected_for_rgb():
  config = _config()
  config.augment.preset = 'simclr_cifar'
  with pytest.raises(ConfigError, match='crop_flip'):
    cmc.create(config, INFO._replace(image_channels=3))
  cmc.create(config, INFO)  # grayscale data has no colours to corrupt
