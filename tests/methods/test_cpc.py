"""CPC: random windows, the patch grid and its columns as sequences, both losses against the
naive CPC loss on the networks' own outputs, probes that ignore padding, config errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl import data
from jssl.config import ConfigError, validate_config
from jssl.methods import TrainInfo
from jssl.methods import cpc
from tiny import initialise, tiny_config

VOWELS = data.load_dataset_from_config('japanese_vowels', tiny_config('cpc').dataset)
SERIES_INFO = TrainInfo(num_examples=len(VOWELS.train), num_classes=9, image_channels=0,
                        num_steps=10, dataset=VOWELS)
IMAGE_INFO = TrainInfo(num_examples=64, num_classes=10, image_channels=1, num_steps=10)


def _naive(preds, future, mask):
  """The CPC loss with loops (float64), as in tests/losses/test_predictive.py."""
  preds, future = np.asarray(preds, np.float64), np.asarray(future, np.float64)
  num_k, batch, steps, _ = preds.shape
  keys = [(n, s) for n in range(batch) for s in range(steps) if mask[n, s]]
  values = []
  for k in range(num_k):
    for b in range(batch):
      for t in range(steps - k - 1):
        if mask[b, t] and mask[b, t + k + 1]:
          scores = np.asarray([preds[k, b, t] @ future[key] for key in keys])
          top = scores.max()
          values.append(top + math.log(np.exp(scores - top).sum())
                        - preds[k, b, t] @ future[b, t + k + 1])
  return np.mean(values)


def _series_config(**cpc):
  config = tiny_config('cpc', **cpc)
  config.cpc.encoder_widths = (8, 8)
  config.cpc.encoder_kernel_sizes = (3, 3)
  config.cpc.encoder_strides = (1, 2)
  config.cpc.context_dim = 6
  config.cpc.prediction_steps = 3
  return config


def test_random_windows_are_slices_within_each_series():
  x = jnp.arange(2 * 10 * 1, dtype=jnp.float32).reshape(2, 10, 1) + 1
  lengths = jnp.asarray([10, 4])
  for seed in range(5):
    windows, new = cpc.random_windows(jax.random.key(seed), x, lengths, 6)
    assert new.tolist() == [6, 4]
    start = int(windows[0, 0, 0] - x[0, 0, 0])
    assert 0 <= start <= 4
    np.testing.assert_array_equal(windows[0], x[0, start:start + 6])
    # A series shorter than the window is taken whole, zeros after it.
    np.testing.assert_array_equal(windows[1, :4], x[1, :4])
    assert np.all(windows[1, 4:] == 0)


def test_patch_grid_and_columns_as_sequences():
  images = jax.random.uniform(jax.random.key(0), (2, 16, 16, 1))
  grid = cpc.patch_grid(images, 8, 4)
  assert grid.shape == (2, 3, 3, 8, 8, 1)
  np.testing.assert_array_equal(grid[1, 2, 1], images[1, 8:16, 4:12])
  h = jax.random.normal(jax.random.key(1), (2, 3, 4, 5))  # B, R, C, F
  predictions = jax.random.normal(jax.random.key(2), (2, 3, 4, 2, 5))  # B, R, C, K, F
  future, preds = cpc.grid_to_sequences(h, predictions)
  assert future.shape == (8, 3, 5) and preds.shape == (2, 8, 3, 5)
  np.testing.assert_array_equal(future[1 * 4 + 3, 2], h[1, 2, 3])
  np.testing.assert_array_equal(preds[1, 0 * 4 + 2, 1], predictions[0, 1, 2, 1])


def test_series_loss_is_cpc_on_the_networks_outputs_and_probes_ignore_padding():
  config = _series_config()
  method = cpc.create(config, SERIES_INFO)
  params, batch_stats, extra = jax.jit(method.init)(jax.random.key(0), None)
  batch = VOWELS.train.get_batch(np.arange(6))
  inputs = method.prepare(jax.random.key(1), batch, {})
  model = cpc.SeriesCPC(encoder=cpc.Conv1DEncoder((8, 8), (3, 3), (1, 2)), context_dim=6,
                        prediction_steps=3)

  @jax.jit
  def everything(params):
    loss = lambda p: method.loss(p, batch_stats, extra, inputs, jnp.int32(0), jax.random.key(2))
    (value, out), grads = jax.value_and_grad(loss, has_aux=True)(params)
    return value, out.features, grads, model.apply({'params': params}, inputs['series'],
                                                   inputs['length'])

  value, online_features, grads, (z, mask, c, preds) = everything(params)
  assert z.shape == (6, 15, 8) and preds.shape == (3, 6, 15, 8)
  np.testing.assert_array_equal(mask.sum(1), -(-np.asarray(batch['length']) // 2))
  np.testing.assert_allclose(value, _naive(preds, z, np.asarray(mask)), rtol=1e-5)
  # The online probe's features: the mean context over the real steps.
  want = [np.asarray(c[b, :int(mask[b].sum())]).mean(0) for b in range(6)]
  np.testing.assert_allclose(online_features, want, rtol=1e-5, atol=1e-6)
  # The probes' representation does not see the padding or the rest of the batch.
  represent = jax.jit(lambda series: method.represent(params, batch_stats, dict(
      batch, series=series), {}))
  features = represent(batch['series'])
  np.testing.assert_allclose(features, online_features, rtol=1e-5, atol=1e-6)
  noisy = np.where(np.arange(29)[None, :, None] < batch['length'][:, None, None],
                   batch['series'], 50.0)
  np.testing.assert_allclose(represent(noisy), features, rtol=1e-5, atol=1e-6)
  assert method.features_dim == 6 and features.shape == (6, 6)
  # Gradients reach the encoder, the GRU and the predictors.
  for part in ('encoder', 'context', 'predictor'):
    assert sum(float(jnp.sum(g**2)) for g in jax.tree_util.tree_leaves(grads[part])) > 0


def test_image_loss_is_cpc_over_the_grid_columns():
  config = tiny_config('cpc', variant='digits')
  method = cpc.create(config, IMAGE_INFO)
  params, batch_stats, extra, batch = initialise(method)
  value, out = jax.jit(method.loss)(params, batch_stats, extra, batch, jnp.int32(0),
                                    jax.random.key(2))
  model = cpc.ImageCPC(encoder=cpc.models.encoder_from_config(config.model), context_dim=64,
                       context_layers=2, prediction_steps=2, patch_size=8, patch_stride=4)
  (h, predictions), _ = model.apply({'params': params, 'batch_stats': batch_stats},
                                    batch.views[0], train=True, mutable=['batch_stats'])
  assert h.shape[:3] == (8, 3, 3) and predictions.shape[3] == 2
  future, preds = cpc.grid_to_sequences(h, predictions)
  np.testing.assert_allclose(value, _naive(preds, future, np.ones(future.shape[:2], bool)),
                             rtol=1e-5)
  np.testing.assert_allclose(out.features, np.asarray(h).mean((1, 2)), rtol=1e-5, atol=1e-6)
  assert method.encode(params, batch_stats, batch.views[0]).shape == (8, method.features_dim)


@pytest.mark.parametrize('field, value, info, message', [
    ('cpc.prediction_steps', 15, SERIES_INFO, 'gives 15 after the encoder\'s stride 2'),
    ('cpc.represent', 'pooled', SERIES_INFO, "represent='pooled' is unknown"),
    ('cpc.crop_length', 30, SERIES_INFO, 'crop_length=30 must be in \\[0, 29\\]'),
    ('cpc.encoder_strides', (1,), SERIES_INFO, 'one entry per layer'),
    ('cpc.temperature', 0.0, SERIES_INFO, 'temperature=0.0 must be > 0'),
    ('cpc.prediction_steps', 3, IMAGE_INFO, 'give 3 rows'),
    ('cpc.patch_size', 20, IMAGE_INFO, 'larger than the 16x16 views'),
])
def test_bad_settings_are_clear_errors(field, value, info, message):
  config = _series_config() if info is SERIES_INFO else tiny_config('cpc', variant='digits')
  parent, _, key = field.rpartition('.')
  config[parent][key] = value
  with pytest.raises(ConfigError, match=message):
    cpc.create(config, info)


def test_probing_image_data_after_series_training_is_refused():
  config = tiny_config('cpc')
  config.eval.dataset = 'digits'
  with pytest.raises(ConfigError, match="eval.dataset='digits' is image data but the run trains "
                     "on 'japanese_vowels' \\(series\\)"):
    validate_config(config, device_count=1)
  config = tiny_config('bert')
  config.dataset.name = 'basic_motions'
  with pytest.raises(ConfigError, match='bert trains on text data'):
    validate_config(config, device_count=1)
