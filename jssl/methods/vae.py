"""Variational autoencoder (Kingma & Welling, ICLR 2014) with a Bernoulli decoder on
dynamically binarized images, evaluated by its ELBO, the importance-weighted bound (Burda et
al. 2016), bits per dimension, reconstructions and samples.

Data: the stored grey levels x in [0, 1] (uint8 / 255) are binarized anew at every step, each
pixel 1 with probability x (one key per example) — the stochastic binarization of
Salakhutdinov & Murray (2008) — so the model is a likelihood model of binary images and
`bits_per_dim` is the negative log-likelihood of binarized test images (binarized once, with
a fixed key) in bits per pixel, estimated by the importance-weighted bound with
`config.vae.iwae_samples` samples (a lower bound on log p(x), so an upper bound on the bits).

Networks: `jssl.models.ConvEncoder` (no BatchNorm: an example's posterior never depends on its
batch) gives the diagonal Gaussian q(z|x); `jssl.models.ConvGenerator` with logits output is
the decoder p(x|z); the prior is N(0, I). The representation probed by kNN / linear is the
posterior mean of the grey-level image (not a binarized one: deterministic).
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
from jssl.models import ConvEncoder, ConvGenerator
from jssl.models.generative import START_SIZES

def _check(config: ml_collections.ConfigDict, info: TrainInfo) -> tuple[int, int]:
  c = config.vae
  height, channels = common.stored_square_image(config, info, 'vae', START_SIZES)
  common.require_positive_ints(config, 'vae', ('latent_dim', 'encoder_width', 'decoder_width',
                                               'iwae_samples', 'eval_examples', 'iwae_chunk'))
  if c.iwae_samples % c.iwae_chunk:
    raise ConfigError(f'config.vae.iwae_samples={c.iwae_samples} must be a multiple of '
                      f'config.vae.iwae_chunk={c.iwae_chunk}.')
  return height, channels


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds the VAE from `config.vae` (latent_dim, widths, evaluation sizes)."""
  size, channels = _check(config, info)
  c = config.vae
  encoder = ConvEncoder(latent_dim=c.latent_dim, base_width=c.encoder_width)
  decoder = ConvGenerator(image_size=size, channels=channels, base_width=c.decoder_width,
                          output='logits')
  num_dims = size * size * channels

  def init(rng, example):
    return common.init_encoder_decoder(encoder, decoder, rng, example, (size, size, channels),
                                       c.latent_dim)

  def prepare(rng, batch, constants):
    del constants
    return common.binarized_inputs(rng, batch)

  def decode(params, batch_stats, z, train):
    variables = {'params': params['decoder'], 'batch_stats': batch_stats['decoder']}
    if train:
      logits, updates = decoder.apply(variables, z, train=True, mutable=['batch_stats'])
      return logits, {'decoder': updates['batch_stats']}
    return decoder.apply(variables, z, train=False), batch_stats

  def loss(params, batch_stats, extra, inputs, step, rng):
    del step
    x = inputs['x']
    mean, log_var = encoder.apply({'params': params['encoder']}, x)
    eps = jax.vmap(lambda k: jax.random.normal(k, (c.latent_dim,)))(
        jax.random.split(rng, x.shape[0]))
    z = mean + jnp.exp(0.5 * log_var) * eps
    logits, batch_stats = decode(params, batch_stats, z, True)
    log_likelihood = losses.bernoulli_log_likelihood(logits, x)
    kl = losses.gaussian_kl(mean, log_var)
    elbo = log_likelihood - kl
    metrics = {'elbo': jnp.mean(elbo), 'kl': jnp.mean(kl),
               'reconstruction_nll': -jnp.mean(log_likelihood)}
    return -jnp.mean(elbo), LossOutput(batch_stats=batch_stats, extra=extra, metrics=metrics,
                                       features=mean)

  def represent(params, batch_stats, batch, constants):
    del batch_stats, constants
    grey = batch['image'].astype(jnp.float32) / 255.0
    return encoder.apply({'params': params['encoder']}, grey)[0]

  def bounds(params, batch_stats, x, grey, key):
    """Per example: ELBO (1 sample), IWAE bound (iwae_samples), reconstruction MSE."""
    mean, log_var = encoder.apply({'params': params['encoder']}, x)
    chunks = c.iwae_samples // c.iwae_chunk

    def chunk_weights(key):
      eps = jax.random.normal(key, (c.iwae_chunk,) + mean.shape)
      z = mean + jnp.exp(0.5 * log_var) * eps  # [K, B, Z]
      logits = decode(params, batch_stats, z.reshape(-1, c.latent_dim), False)[0]
      logits = logits.reshape((c.iwae_chunk, x.shape[0]) + logits.shape[1:])
      log_px = jax.vmap(losses.bernoulli_log_likelihood, in_axes=(0, None))(logits, x)
      log_pz = losses.gaussian_log_density(z, 0.0, jnp.zeros_like(z))
      log_qz = losses.gaussian_log_density(z, mean, log_var)
      return log_px + log_pz - log_qz  # [K, B]

    weights = jax.lax.map(chunk_weights, jax.random.split(key, chunks))
    weights = weights.reshape((-1, x.shape[0]))
    iwae = jax.nn.logsumexp(weights, axis=0) - math.log(c.iwae_samples)
    elbo_key = jax.random.fold_in(key, chunks)
    z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(elbo_key, mean.shape)
    logits = decode(params, batch_stats, z, False)[0]
    elbo = losses.bernoulli_log_likelihood(logits, x) - losses.gaussian_kl(mean, log_var)
    recon = jax.nn.sigmoid(decode(params, batch_stats, mean, False)[0])
    mse = jnp.mean(jnp.square(recon - grey).reshape(x.shape[0], -1), axis=-1)
    return elbo, iwae, mse, recon

  def sample(params, batch_stats, key):
    z = jax.random.normal(key, (64, c.latent_dim))
    return jax.nn.sigmoid(decode(params, batch_stats, z, False)[0])

  jitted = {}

  def evaluate(context):
    """ELBO, IWAE bound (nats per image), bits/dim and reconstruction MSE on the test split;
    samples and reconstructions written to the workdir as PNG grids."""
    state, test = context.state, context.dataset.test
    if not jitted:  # compiled once per run, outputs replicated for every process
      jitted.update(bounds=evaluation.replicated_jit(bounds, context.mesh),
                    sample=evaluation.replicated_jit(sample, context.mesh))
    batch_size = context.config.eval.batch_size
    count = min(len(test), c.eval_examples)
    sums = np.zeros(3)
    first = None
    for start, grey, binary in common.binarized_test_batches(test, count, batch_size):
      key = jax.random.fold_in(jax.random.key(common.EVAL_BINARIZE_SEED), start)
      elbo, iwae, mse, recon = jitted['bounds'](
          state.params, state.batch_stats, evaluation.global_array(binary, context.mesh),
          evaluation.global_array(grey, context.mesh), key)
      keep = min(batch_size, count - start)
      sums += [np.sum(np.asarray(v)[:keep], dtype=np.float64) for v in (elbo, iwae, mse)]
      if first is None:
        first = (grey[:16], np.asarray(recon)[:16])
    elbo, iwae, mse = sums / count
    results = {'elbo': elbo, 'iwae_bound': iwae, 'bits_per_dim': -iwae / (num_dims * math.log(2)),
               'reconstruction_mse': mse}
    common.write_samples(context, jitted['sample'], state.params, state.batch_stats,
                         jax.random.key(0))
    common.write_reconstructions(context, first)
    return results

  return Method(name='vae', views=(), features_dim=c.latent_dim, init=init, loss=loss,
                encode=None, prepare=prepare, represent=represent, evaluate=evaluate)
