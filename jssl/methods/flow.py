"""RealNVP (Dinh, Sohl-Dickstein & Bengio, ICLR 2017): a normalising flow of the stored 8-bit
images, trained and scored by its exact log-likelihood of the dequantized pixels.

Data: each pixel level k in {0, ..., 255} is dequantized on the device, x = (k + u) / 256 with
u ~ U[0, 1) drawn anew at every step, one key per example (`jssl.models.flow.dequantize`);
the model (`jssl.models.flow.ImageFlow`) is the paper's logit preprocessing (alpha =
`config.flow.alpha`) followed by the multi-scale RealNVP, with a N(0, I) prior on its latent z.

Loss: the mean over the batch of the negative log-likelihood of the 256-level images in bits
per dimension, (-log p_X(x) + D log 256) / (D ln 2), with x in [0, 1]^D and every
log-determinant included (the module docstring of `jssl.models.flow` derives it); `nll` is the
same in nats per image.

Evaluation (`evaluate`), on the first `config.flow.eval_examples` test images: `bits_per_dim`
and `nll` (nats per image) with a fixed dequantization (test image i's noise from
`fold_in(key(EVAL_DEQUANTIZE_SEED), i)`, the same at every evaluation and for any batch size);
`config.flow.num_samples` samples z ~ N(0, temperature^2 I), inverted through the flow and the
logit, clipped to [0, 1] (`samples_step<N>.png`).

Representation (`represent`, for the probes): the flattened latent z [B, D] of each image
dequantized at the centre of its bin (u = 1/2): deterministic, and a bijection of the pixels.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jssl.config import ConfigError
from jssl.eval import evaluate as evaluation
from jssl.methods import common
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo
from jssl.models.flow import ImageFlow, dequantize, discrete_nll

LEVELS = 256  # the stored images are 8-bit
EVAL_DEQUANTIZE_SEED = 1234  # the one dequantization of the test images every evaluation uses


def _check(config: ml_collections.ConfigDict, info: TrainInfo) -> tuple[int, ...]:
  c = config.flow
  shape = common.stored_image_shape(config, info, 'flow')
  common.require_positive_ints(config, 'flow', ('num_scales', 'features', 'eval_examples',
                                                'num_samples', 'final_couplings'))
  for field in ('num_blocks', 'checkerboard_couplings', 'channel_couplings'):
    if not isinstance(c[field], int) or c[field] < 0:
      raise ConfigError(f'config.flow.{field}={c[field]!r} must be an integer >= 0.')
  factor = 2 ** c.num_scales
  if shape[0] % factor or shape[1] % factor:
    raise ConfigError(f'config.flow.num_scales={c.num_scales} squeezes the images by {factor}, '
                      f'which does not divide the stored {shape[0]}x{shape[1]}; use at most '
                      f'{_max_scales(shape[0], shape[1])} scales.')
  if not 0.0 < c.alpha < 0.5:
    raise ConfigError(f'config.flow.alpha={c.alpha!r} must be in (0, 0.5) (the paper: 0.05).')
  if not c.temperature > 0:
    raise ConfigError(f'config.flow.temperature={c.temperature!r} must be positive (1.0 '
                      'samples the model itself).')
  return shape


def _max_scales(height: int, width: int) -> int:
  scales = 0
  while height % 2 == 0 and width % 2 == 0:
    height, width, scales = height // 2, width // 2, scales + 1
  return scales


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds RealNVP from `config.flow` (num_scales, features, num_blocks, couplings, alpha, ...)."""
  shape = _check(config, info)
  c = config.flow
  num_dims = int(np.prod(shape))
  network = ImageFlow(image_shape=shape, num_scales=c.num_scales, features=c.features,
                      num_blocks=c.num_blocks, checkerboard_couplings=c.checkerboard_couplings,
                      channel_couplings=c.channel_couplings, final_couplings=c.final_couplings,
                      alpha=c.alpha)

  def init(rng, example):
    del example
    return {'flow': network.init(rng, jnp.full((2,) + shape, 0.5))['params']}, {}, {}

  def nll_of(params, x):
    """[B] nats of the 256-level images and z [B, D] of the dequantized x [B, H, W, C]."""
    z, log_det = network.apply({'params': params['flow']}, x)
    return discrete_nll(z, log_det, levels=LEVELS), z

  def prepare(rng, batch, constants):
    del constants
    keys = jax.random.split(rng, batch['image'].shape[0])
    return {'x': dequantize(keys, batch['image'], levels=LEVELS), 'label': batch['label'],
            'index': batch['index']}

  def loss(params, batch_stats, extra, inputs, step, rng):
    del step, rng
    nll, z = nll_of(params, inputs['x'])
    bits = jnp.mean(nll) / (num_dims * math.log(2))
    metrics = {'nll': jnp.mean(nll), 'bits_per_dim': bits}
    return bits, LossOutput(batch_stats=batch_stats, extra=extra, metrics=metrics, features=z)

  def represent(params, batch_stats, batch, constants):
    del batch_stats, constants
    x = (batch['image'].astype(jnp.float32) + 0.5) / LEVELS  # the bins' centres
    return network.apply({'params': params['flow']}, x)[0]

  def test_nll(params, batch_stats, images, indices):
    """[B] nats of uint8 test `images` under the fixed dequantization of their `indices`."""
    del batch_stats
    root = jax.random.key(EVAL_DEQUANTIZE_SEED)
    keys = jax.vmap(lambda i: jax.random.fold_in(root, i))(indices)
    return nll_of(params, dequantize(keys, images, levels=LEVELS))[0]

  def sample(params, batch_stats, key):
    """`num_samples` images: z ~ N(0, temperature^2 I) through the inverse flow, in [0, 1]."""
    del batch_stats
    z = c.temperature * jax.random.normal(key, (c.num_samples, num_dims))
    x = network.apply({'params': params['flow']}, z, method=ImageFlow.inverse)
    return jnp.clip(x, 0.0, 1.0)

  jitted = {}

  def evaluate(context):
    state, test = context.state, context.dataset.test
    if not jitted:  # compiled once per run, outputs replicated for every process
      jitted.update(nll=evaluation.replicated_jit(test_nll, context.mesh),
                    sample=evaluation.replicated_jit(sample, context.mesh))
    count = min(len(test), c.eval_examples)
    batch_size = context.config.eval.batch_size
    total = 0.0
    for start in range(0, count, batch_size):
      indices = np.arange(start, start + batch_size) % count  # wrap-around padding, dropped
      images = test.get_batch(indices)['image']
      nll = np.asarray(jitted['nll'](
          state.params, state.batch_stats, evaluation.global_array(images, context.mesh),
          evaluation.global_array(indices.astype(np.int32), context.mesh)), np.float64)
      total += float(np.sum(nll[:min(batch_size, count - start)]))
    nll = total / count
    results = {'nll': nll, 'bits_per_dim': nll / (num_dims * math.log(2))}
    common.write_samples(context, jitted['sample'], state.params, state.batch_stats,
                         jax.random.key(0))
    return results

  return Method(name='flow', views=(), features_dim=num_dims, init=init, loss=loss,
                encode=None, prepare=prepare, represent=represent, evaluate=evaluate)
