"""The VAE: binarization on the device, its loss against a hand computation, the evaluation
bounds (IWAE >= ELBO, bits/dim), the PNG grids, bad configs."""

import os

import jax
import numpy as np
import pytest

from jssl.config import ConfigError
from jssl.train.loop import Run
from jssl.train.step import prepare_inputs
import tiny


def _config(**vae):
  config = tiny.tiny_config('vae', encoder_width=4, decoder_width=4, latent_dim=4,
                            eval_examples=200, iwae_samples=20, iwae_chunk=10)
  config.batch_size = 16
  config.num_steps = 4
  config.eval.batch_size = 128
  config.vae.update(vae)
  return config


def test_binarization_loss_bounds_and_pictures(tmp_path):
  run = Run(_config(), str(tmp_path), devices=jax.devices()[:1])
  batch = run.device_batch(next(run.iterator))
  inputs = prepare_inputs(run.method, jax.random.key(3), batch, {})
  x = np.asarray(inputs['x'])
  assert set(np.unique(x)) <= {0.0, 1.0}
  grey = np.asarray(batch['image'], np.float32) / 255.0
  assert np.all(x[grey == 0] == 0) and np.all(x[grey == 1] == 1)
  np.testing.assert_allclose(x.mean(), grey.mean(), atol=0.05)
  again = prepare_inputs(run.method, jax.random.key(4), batch, {})
  assert np.any(np.asarray(again['x']) != x)  # fresh binarization at every step

  state = run.state
  value, out = run.method.loss(state.params, state.batch_stats, state.extra, inputs, 0,
                               jax.random.key(5))
  mean = run.method.represent(state.params, state.batch_stats, {'image': batch['image']}, {})
  assert mean.shape == (16, 4)
  np.testing.assert_allclose(value, -out.metrics['elbo'], rtol=1e-6)
  np.testing.assert_allclose(out.metrics['elbo'],
                             -out.metrics['reconstruction_nll'] - out.metrics['kl'], rtol=1e-5)
  assert float(out.metrics['kl']) > 0

  for _ in range(3):
    run.advance(next(run.iterator))
  results = run.evaluate()
  assert results['iwae_bound'] >= results['elbo'] - 1e-3  # k samples bound tighter than one
  assert results['iwae_bound'] < 0
  np.testing.assert_allclose(results['bits_per_dim'],
                             -results['iwae_bound'] / (64 * np.log(2)), rtol=1e-9)
  assert 0 < results['reconstruction_mse'] < 1
  for key in ('knn_top1', 'linear_top1', 'online_linear_top1'):
    assert 0 <= results[key] <= 1
  step = int(run.state.step)
  for name in (f'samples_step{step}.png', f'reconstructions_step{step}.png'):
    assert os.path.getsize(tmp_path / name) > 100
  assert run.evaluate()['iwae_bound'] == results['iwae_bound']  # fixed evaluation keys
  run.iterator.close()


def test_bad_configs_are_refused(tmp_path):
  config = _config()
  config.dataset.image_size = 16
  with pytest.raises(ConfigError, match='image_size=8'):
    Run(config, str(tmp_path), devices=jax.devices()[:1])
  with pytest.raises(ConfigError, match='multiple of'):
    Run(_config(iwae_samples=25), str(tmp_path), devices=jax.devices()[:1])
  with pytest.raises(ConfigError, match='latent_dim'):
    Run(_config(latent_dim=0), str(tmp_path), devices=jax.devices()[:1])
