"""The autoencoder and the denoising autoencoder (jssl/methods/autoencoder.py): the corruption
statistics, the loss against a hand computation from the networks (the DAE encodes the
corrupted image and is scored on the clean one), the evaluation, bad configs."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl import losses
from jssl.config import ConfigError
from jssl.methods import autoencoder
from jssl.train.loop import Run
from jssl.train.step import prepare_inputs
import tiny


def _config(name='dae', **section):
  config = tiny.tiny_config(name, encoder_width=4, decoder_width=4, latent_dim=4,
                            eval_examples=200)
  config.batch_size = 16
  config.num_steps = 4
  config.eval.batch_size = 128
  config[name].update(section)
  return config


def test_corruptions_have_their_rates_and_differ_per_key():
  x = jnp.full((100, 100, 10), 0.5)
  masked = np.asarray(autoencoder.corrupt(jax.random.key(0), x, noise='masking', level=0.3))
  assert set(np.unique(masked)) == {0.0, 0.5}
  np.testing.assert_allclose(np.mean(masked == 0), 0.3, atol=0.01)  # 10^5 pixels
  noisy = np.asarray(autoencoder.corrupt(jax.random.key(0), x, noise='gaussian', level=0.2))
  np.testing.assert_allclose(np.std(noisy - 0.5), 0.2, rtol=0.02)
  np.testing.assert_allclose(np.mean(noisy - 0.5), 0.0, atol=0.005)
  np.testing.assert_array_equal(autoencoder.corrupt(jax.random.key(0), x, noise='none',
                                                    level=0.3), x)
  other = autoencoder.corrupt(jax.random.key(1), x, noise='masking', level=0.3)
  assert np.any(np.asarray(other) != masked)


def test_dae_loss_is_the_clean_images_reconstruction_from_the_corrupted_one(tmp_path):
  run = Run(_config(), str(tmp_path), devices=jax.devices()[:1])
  batch = run.device_batch(next(run.iterator))
  inputs = prepare_inputs(run.method, jax.random.key(3), batch, {})
  x, noisy = np.asarray(inputs['x']), np.asarray(inputs['noisy'])
  np.testing.assert_allclose(x, np.asarray(batch['image'], np.float32) / 255.0, rtol=1e-6)
  np.testing.assert_allclose(np.mean((noisy == 0) & (x > 0)) / np.mean(x > 0), 0.25, atol=0.05)
  again = prepare_inputs(run.method, jax.random.key(4), batch, {})
  assert np.any(np.asarray(again['noisy']) != noisy)  # a fresh corruption at every step

  state = run.state
  value, out = run.method.loss(state.params, state.batch_stats, state.extra, inputs, 0,
                               jax.random.key(5))
  # By hand: the networks' own modules on the corrupted input, the NLL of the clean one.
  config = run.config.dae
  encoder = autoencoder.ConvEncoder(latent_dim=4, base_width=config.encoder_width,
                                    deterministic=True)
  decoder = autoencoder.ConvGenerator(image_size=8, channels=1, base_width=config.decoder_width,
                                      output='logits')
  code = encoder.apply({'params': state.params['encoder']}, noisy)
  logits, _ = decoder.apply({'params': state.params['decoder'],
                             'batch_stats': state.batch_stats['decoder']}, code, train=True,
                            mutable=['batch_stats'])
  p = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
  want = -np.mean(np.sum((x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(16, -1), axis=1))
  np.testing.assert_allclose(value, want, rtol=1e-5)
  np.testing.assert_allclose(out.metrics['reconstruction_mse'], np.mean((p - x) ** 2), rtol=1e-4)
  np.testing.assert_allclose(out.features, code, rtol=1e-6)
  represented = run.method.represent(state.params, state.batch_stats,
                                     {'image': batch['image']}, {})
  np.testing.assert_allclose(represented, encoder.apply({'params': state.params['encoder']}, x),
                             rtol=1e-6)
  assert np.asarray(losses.bernoulli_nll(logits, x)).shape == (16,)

  for _ in range(3):
    run.advance(next(run.iterator))
  results = run.evaluate()
  assert 0 < results['reconstruction_mse'] < 1 and 0 < results['denoising_mse'] < 1
  for key in ('knn_top1', 'linear_top1', 'online_linear_top1'):
    assert 0 <= results[key] <= 1
  assert os.path.getsize(tmp_path / f'reconstructions_step{int(run.state.step)}.png') > 100
  assert run.evaluate()['denoising_mse'] == results['denoising_mse']  # fixed corruption
  run.iterator.close()


def test_bad_configs_are_refused(tmp_path):
  devices = jax.devices()[:1]
  with pytest.raises(ConfigError, match='use the denoising autoencoder'):
    Run(_config('ae', noise='masking', noise_level=0.2), str(tmp_path), devices=devices)
  with pytest.raises(ConfigError, match=r'must be in \[0, 1\)'):
    Run(_config(noise_level=1.0), str(tmp_path), devices=devices)
  with pytest.raises(ConfigError, match='loss=.*unknown'):
    Run(_config(loss='l1'), str(tmp_path), devices=devices)
  with pytest.raises(ConfigError, match='noise=.*unknown'):
    Run(_config(noise='salt'), str(tmp_path), devices=devices)
