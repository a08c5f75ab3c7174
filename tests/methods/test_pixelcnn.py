"""The Gated PixelCNN (jssl/models/pixelcnn.py, jssl/methods/pixelcnn.py): its masks by the
gradient of every output pixel with respect to every input pixel (zero at or after the pixel in
raster order; non-zero for every pixel before it in the receptive field, so no blind spot), a
normalised distribution, the loss, the evaluation, bad configs; in colour, the masks across
R, G, B by the same gradients and the 8-bit (256-level) likelihood on the emoji."""

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


def _gradient_of_output(network, params, x):
  """Jitted (row, column, channel) -> d sum over the batch of the logits there / d x."""
  @jax.jit
  def grad_at(index):
    out = lambda v: jnp.sum(network.apply({'params': params}, v)[0][:, index[0], index[1],
                                                                    index[2]])
    return jax.grad(out)(x)
  return grad_at


def test_no_pixel_sees_itself_or_later_pixels_and_there_is_no_blind_spot():
  network, params = _network_and_params(num_layers=3)
  x = jax.random.uniform(jax.random.key(1), (1, SIDE, SIDE, 1))
  grad_at = _gradient_of_output(network, params, x)  # one program for every pixel
  for i, j in [(0, 0), (2, 3), (3, 1), (5, 5)]:
    seen = np.asarray(grad_at(jnp.asarray([i, j, 0]))[0, :, :, 0]) != 0
    raster = np.arange(SIDE * SIDE).reshape(SIDE, SIDE)
    assert not np.any(seen[raster >= i * SIDE + j]), (i, j)  # type A: not itself, nothing later
    # L = 3 layers of 3x3 stacks: the L + 1 rows above, L pixels to either side (up and to the
    # right included: the original PixelCNN's blind spot), the row's L + 1 pixels to the left;
    # every one of them, none outside.
    want = np.zeros_like(seen)
    want[max(0, i - 4):i, max(0, j - 3):j + 4] = True
    want[i, max(0, j - 4):j] = True
    np.testing.assert_array_equal(seen, want, err_msg=f'pixel {(i, j)}')


def test_colour_masks_each_sub_pixel_sees_the_earlier_pixels_and_its_earlier_channels():
  network = GatedPixelCNN(levels=4, features=12, num_layers=3, kernel_size=3, first_kernel_size=3,
                          channels=3)
  x = jax.random.uniform(jax.random.key(1), (8, SIDE, SIDE, 3))  # 8 inputs: no ReLU hides a path
  params = network.init(jax.random.key(0), x[:1])['params']
  raster = np.arange(SIDE * SIDE).reshape(SIDE, SIDE)
  grad_at = _gradient_of_output(network, params, x)
  for i, j in [(0, 0), (2, 3), (5, 5)]:
    earlier = np.zeros((SIDE, SIDE), bool)  # the grey model's receptive field (test above)
    earlier[max(0, i - 4):i, max(0, j - 3):j + 4] = True
    earlier[i, max(0, j - 4):j] = True
    for channel in range(3):
      seen = np.any(np.asarray(grad_at(jnp.asarray([i, j, channel]))) != 0, axis=0)  # [S, S, 3]
      assert not np.any(seen[raster > i * SIDE + j]), (i, j, channel)
      np.testing.assert_array_equal(seen[i, j], np.arange(3) < channel, err_msg=f'{i, j, channel}')
      want = np.repeat(earlier[..., None], 3, axis=-1)
      want[i, j] = seen[i, j]
      np.testing.assert_array_equal(seen, want, err_msg=f'pixel {(i, j)}, channel {channel}')


@pytest.mark.parametrize('channels', [1, 3])
def test_the_model_is_a_normalised_distribution_over_binary_images(channels):
  network = GatedPixelCNN(features=6, num_layers=2, kernel_size=3, first_kernel_size=3,
                          channels=channels)
  side = 6 // channels  # 2x3 grey or 1x2 colour images: 2^6 of them either way
  params = network.init(jax.random.key(2), jnp.zeros((1, 1, side, channels)))['params']
  images = jnp.asarray(list(itertools.product([0.0, 1.0], repeat=6))).reshape(
      64, 6 // side // channels, side, channels)
  logits = network.apply({'params': params}, images)[0]
  total = float(jnp.sum(jnp.exp(-losses.discretized_nll(logits, images.astype(jnp.int32)))))
  np.testing.assert_allclose(total, 1.0, rtol=1e-5)


def _config(variant=None, **section):
  config = tiny.tiny_config('pixelcnn', variant=variant, features=6 if variant else 4,
                            num_layers=2, first_kernel_size=3, eval_examples=100, num_samples=4)
  config.batch_size = 16
  config.num_steps = 4
  config.eval.batch_size = 64
  config.pixelcnn.update(section)
  if variant == 'emoji':  # rendered at 8x8: 192 sub-pixels to sample one after another
    config.dataset.stored_size = config.dataset.image_size = 8
  return config


@pytest.mark.parametrize('variant, levels, shape', [(None, 2, (8, 8, 1)),
                                                    ('emoji', 256, (8, 8, 3))])
def test_loss_and_evaluation(tmp_path, variant, levels, shape):
  run = Run(_config(variant), str(tmp_path), devices=jax.devices()[:1])
  batch = run.device_batch(next(run.iterator))
  inputs = prepare_inputs(run.method, jax.random.key(3), batch, {})
  x = np.asarray(inputs['x'])
  assert x.shape == (16,) + shape
  if levels == 2:  # binarized
    assert set(np.unique(x)) <= {0.0, 1.0}
  else:  # the stored 8-bit values
    np.testing.assert_array_equal(x, np.asarray(batch['image']))
  state = run.state
  value, out = run.method.loss(state.params, state.batch_stats, state.extra, inputs, 0,
                               jax.random.key(5))
  features = run.config.pixelcnn.features
  logits = GatedPixelCNN(levels=levels, features=features, num_layers=2, first_kernel_size=3,
                         channels=shape[-1]).apply({'params': state.params['pixelcnn']},
                                                   jnp.asarray(x) / (levels - 1))[0]
  log_p = jax.nn.log_softmax(np.asarray(logits, np.float64), axis=-1)
  picked = np.take_along_axis(np.asarray(log_p), x.astype(int)[..., None], -1)
  np.testing.assert_allclose(value, -np.mean(np.sum(picked.reshape(16, -1), 1)), rtol=1e-5)
  assert out.features.shape == (16, features)
  for _ in range(3):
    run.advance(next(run.iterator))
  results = run.evaluate()
  dims = int(np.prod(shape))
  assert 0 < results['nll'] and 0 < results['bits_per_dim'] < (1.5 if levels == 2 else 8.5)
  np.testing.assert_allclose(results['bits_per_dim'], results['nll'] / (dims * np.log(2)),
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
  with pytest.raises(ConfigError, match='levels=3 must be 2'):
    Run(_config(levels=3), str(tmp_path), devices=devices)
  with pytest.raises(ConfigError, match='multiple of the 3 channels'):
    Run(_config('emoji', features=8), str(tmp_path), devices=devices)
