"""VQ-VAE (van den Oord, Vinyals & Kavukcuoglu, NeurIPS 2017), stage one: an autoencoder whose
code is a grid of discrete vectors from a learned codebook, on dynamically binarized images.

Data: the VAE's, MADE's and the PixelCNN's (`common.binarize` every step; the test images
binarized once, `common.binarized_test_batches`), so that the two-stage model's `bits_per_dim`
(`jssl/methods/vqvae_prior.py`) is of the same binary images as theirs.

Step: the encoder (`jssl.models.vqvae.VQEncoder`) maps x to z_e, a grid of L = h x w vectors
of size D; each is replaced by its nearest of the K codes with the straight-through gradient
(`jssl.losses.vq_codebook_losses`); the decoder gives Bernoulli logits of x. Loss per image:
the reconstruction NLL (nats) + L * (codebook term + beta * commitment term), the two terms
being means over the L vectors (so per image they are sums, on the scale of the NLL).

Codebook (`config.vqvae.ema`): trained by the codebook term (the paper's objective, the
codes in `params['codebook']`), or (the paper's appendix, the default here) set from
exponential moving averages of the assigned encoder outputs: per code the count N_k and the
sum m_k over the global batch, N <- g N + (1 - g) n, m <- g m + (1 - g) sum z_e, e_k = m_k / N_k
with Laplace smoothing of N (`ema_decay` g, `ema_epsilon`); then the codes live in
`extra['codebook']` and the codebook term is left out of the loss. Both EMAs start at N = 1,
m = the initial code, so an unused code keeps its value instead of being divided by ~0.

Dead codes: `extra['vq']['usage']` is an EMA (`usage_decay`) of the vectors assigned to each
code per step, `extra['vq']['recent']` K encoder outputs drawn from the last step's batch. At
the start of every epoch after the first (`Method.epoch_start`, so a resumed run repeats it)
each code whose usage is below `dead_threshold` is restarted at one of those recent outputs
(in `params` with its optimizer moments zeroed, or in the EMA state with N = 1, m = the new
code), and its usage set to the mean usage. `dead_codes`, `codes_used`, `codebook_perplexity`
(exp of the entropy of the batch's code frequencies: K when all codes are used equally) and
the cumulative `code_restarts` are logged every step.

Evaluation (`evaluate`), on the first `eval_examples` binarized test images: the
reconstruction NLL (nats per image) and MSE (decoder probabilities against the grey levels),
`bits_per_dim_uniform_prior` = (NLL + L ln K) / (D_pixels ln 2) — the bound under a uniform
prior over codes, before a prior is trained — and the test codes' perplexity and usage; a
PNG of test images over their reconstructions. Representation (probes): z_e of the grey image,
flattened [L * D].
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

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
from jssl.models.vqvae import VQDecoder, VQEncoder

PyTree = Any


class Networks(NamedTuple):
  """The encoder and decoder of a `config.vqvae`, and the shapes they work on."""
  encoder: VQEncoder
  decoder: VQDecoder
  image_shape: tuple  # (H, W, C) of the stored images
  grid: tuple  # (h, w) of the code grid

  def encode(self, params: PyTree, x: jax.Array) -> jax.Array:
    """z_e [B, h, w, D] of images [B, H, W, C] in [0, 1]."""
    return self.encoder.apply({'params': params['encoder']}, x)

  def decode(self, params: PyTree, quantized: jax.Array) -> jax.Array:
    """Bernoulli logits [B, H, W, C] of code vectors [B, h, w, D]."""
    return self.decoder.apply({'params': params['decoder']}, quantized)


def networks(config: ml_collections.ConfigDict, info: TrainInfo) -> Networks:
  """Checks `config.vqvae` against the data and builds the networks.

  Raises:
    ConfigError: not the stored image size, a field out of range, or an image side the
      downsamplings do not divide.
  """
  c = config.vqvae
  shape = common.stored_image_shape(config, info, 'vqvae')
  common.require_positive_ints(config, 'vqvae', ('num_codes', 'code_dim', 'width',
                                                 'downsamplings', 'eval_examples'))
  if not isinstance(c.num_residual, int) or c.num_residual < 0:
    raise ConfigError(f'config.vqvae.num_residual={c.num_residual!r} must be an integer >= 0.')
  factor = 2 ** c.downsamplings
  if shape[0] % factor or shape[1] % factor:
    raise ConfigError(f'config.vqvae.downsamplings={c.downsamplings} halves the '
                      f'{shape[0]}x{shape[1]} images {c.downsamplings} times, which does not '
                      'divide them; use fewer (1 for 8x8 digits, 2 for 28x28).')
  for field in ('ema_decay', 'usage_decay'):
    if not 0.0 <= c[field] < 1.0:
      raise ConfigError(f'config.vqvae.{field}={c[field]!r} must be in [0, 1), e.g. 0.99.')
  if c.commitment < 0 or c.dead_threshold < 0 or c.ema_epsilon <= 0:
    raise ConfigError('config.vqvae.commitment and dead_threshold must be >= 0 and ema_epsilon '
                      f'> 0 (got {c.commitment!r}, {c.dead_threshold!r}, {c.ema_epsilon!r}).')
  encoder = VQEncoder(code_dim=c.code_dim, width=c.width, downsamplings=c.downsamplings,
                      num_residual=c.num_residual)
  decoder = VQDecoder(channels=shape[-1], width=c.width, downsamplings=c.downsamplings,
                      num_residual=c.num_residual)
  return Networks(encoder, decoder, shape, (shape[0] // factor, shape[1] // factor))


def ema_codebook_update(state: dict, z_e: jax.Array, indices: jax.Array, *, decay: float,
                        epsilon: float) -> dict:
  """One EMA step of the codebook (van den Oord et al. 2017, appendix A.1).

  Args:
    state: {'cluster_size': [K], 'embed_sum': [K, D]} running count and sum per code.
    z_e: [N, D] encoder outputs of the step (no gradient flows through the update).
    indices: [N] their codes.
    decay: g.
    epsilon: Laplace smoothing of the counts.

  Returns:
    {'cluster_size', 'embed_sum', 'codebook' [K, D] = embed_sum / smoothed cluster_size}.
  """
  num_codes = state['cluster_size'].shape[0]
  one_hot = jax.nn.one_hot(indices, num_codes, dtype=jnp.float32)
  z_e = jax.lax.stop_gradient(z_e.astype(jnp.float32))
  size = decay * state['cluster_size'] + (1.0 - decay) * jnp.sum(one_hot, axis=0)
  total = decay * state['embed_sum'] + (1.0 - decay) * one_hot.T @ z_e
  n = jnp.sum(size)
  smoothed = (size + epsilon) / (n + num_codes * epsilon) * n
  return {'cluster_size': size, 'embed_sum': total, 'codebook': total / smoothed[:, None]}


def restart_dead_codes(codebook: jax.Array, usage: jax.Array, recent: jax.Array, *,
                       threshold: float) -> tuple[jax.Array, jax.Array]:
  """(codebook with every code of usage < threshold replaced by the same row of `recent`,
  the [K] bool mask of the restarted codes)."""
  dead = usage < threshold
  return jnp.where(dead[:, None], recent, codebook), dead


def _zero_rows(tree: PyTree, key: str, dead: jax.Array) -> PyTree:
  """Zeros the `dead` rows of every [K, D] leaf of `tree` under the dict key `key` (an
  optimizer's moments of the restarted codes)."""

  def zero(path, leaf):
    under = any(getattr(entry, 'key', None) == key for entry in path)
    if under and leaf.ndim == 2 and leaf.shape[0] == dead.shape[0]:
      return jnp.where(dead[:, None], jnp.zeros_like(leaf), leaf)
    return leaf

  return jax.tree_util.tree_map_with_path(zero, tree)


def codebook_of(params: PyTree, extra: PyTree) -> jax.Array:
  """The [K, D] codes: `extra['codebook']` (EMA) or `params['codebook']`."""
  return extra['codebook'] if 'codebook' in extra else params['codebook']


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds the VQ-VAE from `config.vqvae` (codes, sizes, EMA, restarts, evaluation)."""
  nets = networks(config, info)
  c = config.vqvae
  num_codes, grid_size = c.num_codes, nets.grid[0] * nets.grid[1]
  num_dims = int(np.prod(nets.image_shape))

  def init(rng, example):
    del example
    encoder_rng, decoder_rng, code_rng = jax.random.split(rng, 3)
    x = jnp.zeros((2,) + nets.image_shape, jnp.float32)
    codes = jax.random.uniform(code_rng, (num_codes, c.code_dim), jnp.float32, -1.0, 1.0)
    params = {'encoder': nets.encoder.init(encoder_rng, x)['params'],
              'decoder': nets.decoder.init(decoder_rng,
                                           jnp.zeros((2,) + nets.grid + (c.code_dim,)))['params']}
    usage = jnp.full((num_codes,), float(c.dead_threshold), jnp.float32)
    extra = {'vq': {'usage': usage, 'recent': codes, 'restarts': jnp.zeros((), jnp.int32)}}
    if c.ema:
      extra.update(codebook=codes, cluster_size=jnp.ones((num_codes,), jnp.float32),
                   embed_sum=codes)
    else:
      params['codebook'] = codes
    return params, {}, extra

  def prepare(rng, batch, constants):
    del constants
    return common.binarized_inputs(rng, batch)

  def loss(params, batch_stats, extra, inputs, step, rng):
    del step
    x = inputs['x']
    z_e = nets.encode(params, x)
    vq = losses.vq_codebook_losses(z_e, codebook_of(params, extra), commitment=c.commitment)
    reconstruction = losses.bernoulli_nll(nets.decode(params, vq.quantized), x)
    quantiser = vq.commitment_loss if c.ema else vq.codebook_loss + vq.commitment_loss
    value = jnp.mean(reconstruction) + grid_size * quantiser

    flat, indices = z_e.reshape(-1, c.code_dim), vq.indices.reshape(-1)
    counts = jnp.sum(jax.nn.one_hot(indices, num_codes, dtype=jnp.float32), axis=0)
    usage = c.usage_decay * extra['vq']['usage'] + (1.0 - c.usage_decay) * counts
    picks = jax.random.randint(rng, (num_codes,), 0, flat.shape[0])
    new_extra = {'vq': {'usage': usage, 'recent': jax.lax.stop_gradient(flat[picks]),
                        'restarts': extra['vq']['restarts']}}
    if c.ema:
      new_extra.update(ema_codebook_update(
          {'cluster_size': extra['cluster_size'], 'embed_sum': extra['embed_sum']}, flat,
          indices, decay=c.ema_decay, epsilon=c.ema_epsilon))
    frequency = counts / jnp.sum(counts)
    entropy = -jnp.sum(jnp.where(counts > 0, frequency * jnp.log(jnp.maximum(frequency, 1e-30)),
                                 0.0))
    metrics = {'reconstruction_nll': jnp.mean(reconstruction), 'codebook_loss': vq.codebook_loss,
               'commitment_loss': vq.commitment_loss, 'codebook_perplexity': jnp.exp(entropy),
               'codes_used': jnp.sum(counts > 0), 'dead_codes': jnp.sum(usage < c.dead_threshold),
               'code_restarts': extra['vq']['restarts']}
    return value, LossOutput(batch_stats=batch_stats, extra=new_extra, metrics=metrics,
                             features=z_e.reshape(z_e.shape[0], -1))

  def epoch_start(params, opt_state, extra, features, epoch, rng):
    del features, rng
    vq = extra['vq']
    # The first epoch starts from the initial codes: no code counts as dead before it.
    usage = jnp.where(epoch > 0, vq['usage'], jnp.inf)
    codes, dead = restart_dead_codes(codebook_of(params, extra), usage, vq['recent'],
                                     threshold=c.dead_threshold)
    usage = jnp.where(dead, jnp.mean(vq['usage']), vq['usage'])
    extra = {**extra, 'vq': {**vq, 'usage': usage,
                             'restarts': vq['restarts'] + jnp.sum(dead, dtype=jnp.int32)}}
    if c.ema:
      extra.update(codebook=codes, embed_sum=jnp.where(dead[:, None], codes, extra['embed_sum']),
                   cluster_size=jnp.where(dead, 1.0, extra['cluster_size']))
    else:
      params = {**params, 'codebook': codes}
      opt_state = _zero_rows(opt_state, 'codebook', dead)
    return params, opt_state, extra

  def represent(params, batch_stats, batch, constants):
    del batch_stats, constants
    z_e = nets.encode(params, batch['image'].astype(jnp.float32) / 255.0)
    return z_e.reshape(z_e.shape[0], -1)

  def reconstruct(params, extra, x, grey):
    """Per example: reconstruction NLL and MSE; the probabilities; the codes."""
    vq = losses.vq_codebook_losses(nets.encode(params, x), codebook_of(params, extra),
                                   commitment=c.commitment)
    logits = nets.decode(params, vq.quantized)
    probabilities = jax.nn.sigmoid(logits)
    mse = jnp.mean(jnp.square(probabilities - grey).reshape(x.shape[0], -1), axis=-1)
    return losses.bernoulli_nll(logits, x), mse, probabilities, vq.indices

  jitted = {}

  def evaluate(context):
    state, test = context.state, context.dataset.test
    if not jitted:  # compiled once per run, outputs replicated for every process
      jitted['reconstruct'] = evaluation.replicated_jit(reconstruct, context.mesh)
    count = min(len(test), c.eval_examples)
    sums, counts, first = np.zeros(2), np.zeros(num_codes), None
    for start, grey, binary in common.binarized_test_batches(test, count,
                                                             context.config.eval.batch_size):
      nll, mse, probabilities, indices = jitted['reconstruct'](
          state.params, state.extra, evaluation.global_array(binary, context.mesh),
          evaluation.global_array(grey, context.mesh))
      keep = min(binary.shape[0], count - start)
      sums += [np.sum(np.asarray(v, np.float64)[:keep]) for v in (nll, mse)]
      counts += np.bincount(np.asarray(indices)[:keep].reshape(-1), minlength=num_codes)
      if first is None:
        first = (grey[:16], np.asarray(probabilities)[:16])
    nll, mse = sums / count
    frequency = counts[counts > 0] / counts.sum()
    results = {'reconstruction_nll': nll, 'reconstruction_mse': mse,
               'bits_per_dim_uniform_prior': (nll + grid_size * math.log(num_codes))
                                             / (num_dims * math.log(2)),
               'test_codebook_perplexity': float(np.exp(-np.sum(frequency * np.log(frequency)))),
               'test_codes_used': int(np.sum(counts > 0))}
    common.write_reconstructions(context, first)
    return results

  return Method(name='vqvae', views=(), features_dim=grid_size * c.code_dim, init=init,
                loss=loss, encode=None, prepare=prepare, represent=represent,
                evaluate=evaluate, epoch_start=epoch_start, epoch_features=lambda epoch: False)
