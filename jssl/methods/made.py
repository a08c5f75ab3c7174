"""MADE (Germain et al., ICML 2015): masked autoencoder for distribution estimation on
dynamically binarized images, with order- and connectivity-agnostic training.

Data: the VAE's (`common.binarize`): each pixel is 1 with probability grey / 255, anew at every
step; the test images are binarized once with the VAE's fixed seed, so the two models'
`bits_per_dim` are of the same binary images.

Training: the network (`jssl.models.made.MADE`) is trained under `config.made.num_masks`
connectivities: at every step one mask index is drawn from the step's key and its masks are
built on the device from `fold_in(key(config.made.mask_seed), index)`
(`jssl.models.made.made_masks`): a random ordering of the pixels (`order_agnostic`; else the
raster order for every mask) and random hidden degrees. With one mask it is the plain MADE.
Loss: the exact negative log-likelihood of the batch under the drawn mask
(`jssl.losses.bernoulli_nll` of the logits, which are p(x_d | x_<d)), mean nats per image.

Evaluation (`evaluate`), on the first `config.made.eval_examples` test images:
`nll` = -log of the ensemble likelihood (1/K) sum_k p_k(x) over all K masks (the paper's test
averaging), `nll_mask0` the first mask's alone, both in nats per image, and
`bits_per_dim` = nll / (D ln 2); 64 samples drawn pixel by pixel in mask 0's ordering
(`samples_step<N>.png`).

Representation (`represent`, for the probes): the last hidden layer under mask 0, on the
grey levels in [0, 1]: a MADE has no bottleneck, so this is the nearest thing to a code.
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
from jssl.models.made import MADE, made_masks


def _check(config: ml_collections.ConfigDict, info: TrainInfo) -> tuple[int, ...]:
  c = config.made
  shape = common.stored_image_shape(config, info, 'made')
  sizes = tuple(c.hidden_sizes)
  if not sizes or any(not isinstance(s, int) or s < 1 for s in sizes):
    raise ConfigError(f'config.made.hidden_sizes={c.hidden_sizes!r} must be one or more '
                      'positive integers, e.g. (500,).')
  common.require_positive_ints(config, 'made', ('num_masks', 'eval_examples', 'num_samples'))
  return shape


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds MADE from `config.made` (hidden_sizes, direct, num_masks, order_agnostic, ...)."""
  shape = _check(config, info)
  c = config.made
  num_dims = int(np.prod(shape))
  hidden_sizes = tuple(c.hidden_sizes)
  network = MADE(num_inputs=num_dims, hidden_sizes=hidden_sizes, direct=c.direct)

  def masks_of(index):
    key = jax.random.fold_in(jax.random.key(c.mask_seed), index)
    return made_masks(key, num_dims, hidden_sizes, natural_order=not c.order_agnostic)

  def apply(params, x, index):
    return network.apply({'params': params['made']}, x.reshape(x.shape[0], -1), masks_of(index))

  def init(rng, example):
    del example
    x = jnp.zeros((2, num_dims), jnp.float32)
    return {'made': network.init(rng, x, masks_of(0))['params']}, {}, {}

  def prepare(rng, batch, constants):
    del constants
    return common.binarized_inputs(rng, batch)

  def loss(params, batch_stats, extra, inputs, step, rng):
    del step
    x = inputs['x']
    index = jax.random.randint(rng, (), 0, c.num_masks)
    logits, hidden = apply(params, x, index)
    nll = losses.bernoulli_nll(logits, x.reshape(x.shape[0], -1))
    metrics = {'nll': jnp.mean(nll), 'bits_per_dim': jnp.mean(nll) / (num_dims * math.log(2))}
    return jnp.mean(nll), LossOutput(batch_stats=batch_stats, extra=extra, metrics=metrics,
                                     features=hidden)

  def represent(params, batch_stats, batch, constants):
    del batch_stats, constants
    return apply(params, batch['image'].astype(jnp.float32) / 255.0, 0)[1]

  def log_likelihoods(params, batch_stats, x):
    """[K, B] log p_k(x) of the binary images under every mask k."""
    del batch_stats
    flat = x.reshape(x.shape[0], -1)
    return jax.lax.map(lambda k: -losses.bernoulli_nll(apply(params, x, k)[0], flat),
                       jnp.arange(c.num_masks))

  def sample(params, batch_stats, key):
    """`num_samples` images drawn pixel by pixel in mask 0's ordering."""
    del batch_stats
    order = masks_of(0).order
    keys = jax.random.split(key, num_dims)

    def draw(i, x):
      pixel = order[i]
      logits = apply(params, x, 0)[0][:, pixel]
      return x.at[:, pixel].set(jax.random.bernoulli(keys[i], jax.nn.sigmoid(logits)))

    x = jax.lax.fori_loop(0, num_dims, draw, jnp.zeros((c.num_samples, num_dims), jnp.float32))
    return x.reshape((c.num_samples,) + shape)

  jitted = {}

  def evaluate(context):
    state, test = context.state, context.dataset.test
    if not jitted:  # compiled once per run, outputs replicated for every process
      jitted.update(log_likelihoods=evaluation.replicated_jit(log_likelihoods, context.mesh),
                    sample=evaluation.replicated_jit(sample, context.mesh))
    count = min(len(test), c.eval_examples)
    sums = np.zeros(2)
    for start, _, binary in common.binarized_test_batches(test, count,
                                                          context.config.eval.batch_size):
      log_p = np.asarray(jitted['log_likelihoods'](
          state.params, state.batch_stats, evaluation.global_array(binary, context.mesh)),
          np.float64)  # [K, B]
      keep = min(binary.shape[0], count - start)
      ensemble = np.logaddexp.reduce(log_p, axis=0) - math.log(c.num_masks)
      sums += [-np.sum(ensemble[:keep]), -np.sum(log_p[0, :keep])]
    nll, nll_mask0 = sums / count
    results = {'nll': nll, 'nll_mask0': nll_mask0,
               'bits_per_dim': nll / (num_dims * math.log(2))}
    common.write_samples(context, jitted['sample'], state.params, state.batch_stats,
                         jax.random.key(0))
    return results

  return Method(name='made', views=(), features_dim=hidden_sizes[-1], init=init, loss=loss,
                encode=None, prepare=prepare, represent=represent, evaluate=evaluate)
