"""Gated PixelCNN (van den Oord et al., NeurIPS 2016): the exact likelihood of an
autoregressive model in raster order, with no blind spot, on binarized or 8-bit images, grey
or colour.

`config.pixelcnn.levels` chooses the data:
  2    dynamically binarized images, the VAE's and MADE's (`common.binarize` in training; the
       test images binarized once with the same seed, `common.binarized_test_batches`), so the
       three models' `bits_per_dim` are of the same binary images;
  256  the stored 8-bit sub-pixels themselves, each a 256-way softmax (the paper's discrete
       distribution; its CIFAR-10 numbers are of this kind).
Each sub-pixel is a softmax over the levels (`jssl.losses.discretized_nll`); the network is
`jssl.models.pixelcnn.GatedPixelCNN` (vertical and horizontal stacks, gated layers, a type-A
first layer) with the masks across colour channels when the images have C > 1 channels
(R, then G given R, then B given R and G). Its input is the level / (levels - 1), in [0, 1].

Evaluation (`evaluate`): `nll` (nats per image) and `bits_per_dim` (per sub-pixel: H x W x C
dimensions) on the first `config.pixelcnn.eval_examples` test images; `num_samples` samples
drawn sub-pixel by sub-pixel in raster order (`samples_step<N>.png`). Representation: the mean
over positions of the last horizontal stack, on the stored levels in [0, 1].
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jssl import losses
from jssl.config import ConfigError
from jssl.eval import evaluate as evaluation
from jssl.methods import common
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo
from jssl.models.pixelcnn import GatedPixelCNN


LEVELS = (2, 256)


def _check(config: ml_collections.ConfigDict, info: TrainInfo) -> tuple[int, ...]:
  c = config.pixelcnn
  shape = common.stored_image_shape(config, info, 'pixelcnn')
  if c.levels not in LEVELS:
    raise ConfigError(f'config.pixelcnn.levels={c.levels!r} must be 2 (binarized images) or '
                      '256 (the 8-bit values).')
  if isinstance(c.features, int) and c.features % shape[-1]:
    raise ConfigError(f'config.pixelcnn.features={c.features} must be a multiple of the '
                      f'{shape[-1]} channels of {config.dataset.name!r} (a group of features '
                      f'per colour channel), e.g. {shape[-1] * max(1, c.features // shape[-1])}.')
  common.require_positive_ints(config, 'pixelcnn', ('features', 'num_layers', 'eval_examples',
                                                    'num_samples'))
  for field in ('kernel_size', 'first_kernel_size'):
    if not isinstance(c[field], int) or c[field] < 3 or c[field] % 2 == 0:
      raise ConfigError(f'config.pixelcnn.{field}={c[field]!r} must be an odd integer >= 3.')
  return shape


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds the Gated PixelCNN from `config.pixelcnn` (features, layers, kernel sizes, ...)."""
  shape = _check(config, info)
  c = config.pixelcnn
  num_dims = int(np.prod(shape))
  levels = c.levels
  network = GatedPixelCNN(levels=levels, features=c.features, num_layers=c.num_layers,
                          kernel_size=c.kernel_size, first_kernel_size=c.first_kernel_size,
                          channels=shape[-1])

  def init(rng, example):
    del example
    return {'pixelcnn': network.init(rng, jnp.zeros((2,) + shape))['params']}, {}, {}

  def apply(params, x):
    """x: levels as float [B, H, W, C] -> (logits [B, H, W, C, levels], features)."""
    return network.apply({'params': params['pixelcnn']}, x / (levels - 1))

  def prepare(rng, batch, constants):
    del constants
    if levels == 2:
      return common.binarized_inputs(rng, batch)
    return {'x': batch['image'].astype(jnp.float32), 'label': batch['label'],
            'index': batch['index']}

  def loss(params, batch_stats, extra, inputs, step, rng):
    del step, rng
    x = inputs['x']
    logits, features = apply(params, x)
    nll = losses.discretized_nll(logits, x.astype(jnp.int32))
    metrics = {'nll': jnp.mean(nll), 'bits_per_dim': jnp.mean(nll) / (num_dims * math.log(2))}
    return jnp.mean(nll), LossOutput(batch_stats=batch_stats, extra=extra, metrics=metrics,
                                     features=features)

  def represent(params, batch_stats, batch, constants):
    del batch_stats, constants
    return network.apply({'params': params['pixelcnn']},
                         batch['image'].astype(jnp.float32) / 255.0)[1]

  def nll_fn(params, batch_stats, x):
    del batch_stats
    return losses.discretized_nll(apply(params, x)[0], x.astype(jnp.int32))

  def sample(params, batch_stats, key):
    """`num_samples` images in [0, 1] drawn sub-pixel by sub-pixel in raster order."""
    del batch_stats
    height, width, channels = shape
    keys = jax.random.split(key, height * width * channels)

    def draw(i, x):
      row, col, channel = i // (width * channels), i // channels % width, i % channels
      logits = apply(params, x)[0][:, row, col, channel]  # [N, levels]
      value = jax.random.categorical(keys[i], logits).astype(jnp.float32)
      return x.at[:, row, col, channel].set(value)

    drawn = jax.lax.fori_loop(0, height * width * channels, draw,
                              jnp.zeros((c.num_samples,) + shape, jnp.float32))
    return drawn / (levels - 1)

  jitted = {}

  def evaluate(context):
    state, test = context.state, context.dataset.test
    if not jitted:  # compiled once per run, outputs replicated for every process
      jitted.update(nll=evaluation.replicated_jit(nll_fn, context.mesh),
                    sample=evaluation.replicated_jit(sample, context.mesh))
    count = min(len(test), c.eval_examples)
    total = 0.0
    for start, grey, binary in common.binarized_test_batches(test, count,
                                                             context.config.eval.batch_size):
      x = binary if levels == 2 else np.round(grey * 255.0)
      nll = np.asarray(jitted['nll'](state.params, state.batch_stats,
                                     evaluation.global_array(x, context.mesh)), np.float64)
      total += float(np.sum(nll[:min(x.shape[0], count - start)]))
    nll = total / count
    results = {'nll': nll, 'bits_per_dim': nll / (num_dims * math.log(2))}
    common.write_samples(context, jitted['sample'], state.params, state.batch_stats,
                         jax.random.key(0))
    return results

  return Method(name='pixelcnn', views=(), features_dim=c.features, init=init, loss=loss,
                encode=None, prepare=prepare, represent=represent, evaluate=evaluate)
