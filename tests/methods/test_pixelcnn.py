"""The Gated PixelCNN (jssl/models/pixelcnn.py, jssl/methods/pixelcnn.py): its masks by the
gradient of every output pixel with respect to every input pixel (zero at or after the pixel in
raster order; non-zero for every pixel before it in the receptive field, so no blind spot), a
normalised distribution, the loss, the evaluation, bad configs."""

import itertools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl import losses
from jssl.config import ConfigError
from jssl.models.pixelcnn import GatedPixelCNN
from jssl.train.loop import Run
from jssl.train.step import prepare_inputs
import tiny

SIDE = 6


def _network_and_params(num_layers=3):
  network = GatedPixelCNN(features=16, num_layers=num_layers, kernel_size=3, first_kernel_size=3)
  params = network.init(jax.random.key(0), jnp.zeros((1, SIDE, SIDE, 1)))['params']
  return network, params


def test_no_pixel_sees_itself_or_later_pixels_and_there_is_no_blind_spot():
  network, params = _network_and_params(num_layers=3)
  x = jax.random.uniform(jax.random.key(1), (1, SIDE, SIDE, 1))
  for i, j in [(0, 0), (2, 3), (3, 1), (5, 5)]:
    grad = jax.grad(lambda v: network.apply({'params': params}, v)[0][0, i, j, 0, 1])(x)
    seen = np.asarray(grad[0, :, :, 0]) != 0
    raster = np.arange(SIDE * SIDE).reshape(SIDE, SIDE)
    assert not np.any(seen[raster >= i * SIDE + j]), (i, j)  # type A: not itself, nothing later
    # L = 3 layers of 3x3 stacks: the L + 1 rows above, L pixels to either side (up and to the
    # right included: the original PixelCNN's blind spot), the row's L + 1 pixels to the left;
    # every one of them, none outside.
    want = np.zeros_like(seen)
    want[max(0, i - 4):i, max(0, j - 3):j + 4] = True
    want[i, max(0, j - 4):j] = True
    np.testing.assert_array_equal(seen, want, err_msg=f'pixel {(i, j)}')


def test_the_model_is_a_normalised_distribution_over_binary_images():
  network = GatedPixelCNN(features=4, num_layers=2, kernel_size=3, first_kernel_size=3)
  params = network.init(jax.random.key(2), jnp.zeros((1, 2, 3, 1)))['params']
  images = jnp.asarray(list(itertools.product([0.0, 1.0], repeat=6))).reshape(64, 2, 3, 1)
  logits = network.apply({'params': params}, images)[0]
  total = float(jnp.sum(jnp.exp(-losses.discretized_nll(logits, images.astype(jnp.int32)))))
  np.testing.assert_allclose(total, 1.0, rtol=1e-5)


def _config(**section):
  config = tiny.tiny_config('pixelcnn', features=4, num_layers=2, first_kernel_size=3,
                            eval_examples=100, num_samples=4)
  config.batch_size = 16
  config.num_steps = 4
  config.eval.batch_size = 64
  config.pixelcnn.update(section)
  return config


def test_loss_and_evaluation(tmp_path):
  run = Run(_config(), str(tmp_path), devices=jax.devices()[:1])
  batch = run.device_batch(next(run.iterator))
  inputs = prepare_inputs(run.method, jax.random.key(3), batch, {})
  x = np.asarray(inputs['x'])
  assert set(np.unique(x)) <= {0.0, 1.0}
  state = run.state
  value, out = run.method.loss(state.params, state.batch_stats, state.extra, inputs, 0,
                               jax.random.key(5))
  logits = GatedPixelCNN(levels=2, features=4, num_layers=2, first_kernel_size=3).apply(
      {'params': state.params['pixelcnn']}, jnp.asarray(x))[0]
  log_p = jax.nn.log_softmax(np.asarray(logits, np.float64), axis=-1)
  picked = np.take_along_axis(np.asarray(log_p), x.astype(int)[..., None], -1)
  np.testing.assert_allclose(value, -np.mean(np.sum(picked.reshape(16, -1), 1)), rtol=1e-5)
  assert out.features.shape == (16, 4)
  for _ in range(3):
    run.advance(next(run.iterator))
  results = run.evaluate()
  assert 0 < results['nll'] and 0 < results['bits_per_dim'] < 1.5
  np.testing.assert_allclose(results['bits_per_dim'], results['nll'] / (64 * np.log(2)),
                             rtol=1e-9)
  assert os.path.getsize(tmp_path / f'samples_step{int(run.state.step)}.png') > 100
  assert run.evaluate()['nll'] == results['nll']
  run.iterator.close()


def test_bad_configs_are_refused(tmp_path):
  devices = jax.devices()[:1]
  with pytest.raises(ConfigError, match='odd integer'):
    Run(_config(kernel_size=4), str(tmp_path), devices=devices)
  with pytest.raises(ConfigError, match='num_layers'):
    Run(_config(num_layers=0), str(tmp_path), devices=devices)
