"""Autoencoder and denoising autoencoder (Vincent, Larochelle, Bengio & Manzagol, ICML 2008).

Both are one network: `jssl.models.ConvEncoder(deterministic=True)` maps an image to a code
h (the bottleneck, the representation the probes read), `jssl.models.ConvGenerator` with logits
output maps h back to pixel logits, and the loss is the reconstruction of the *clean* image.
The denoising autoencoder encodes a corrupted copy x~ instead of x, drawn on the device at
every step (`prepare`, one key per example):

* `masking` (the paper's): each pixel is set to 0 with probability `noise_level` (the fraction
  of destroyed inputs, the paper's nu);
* `gaussian`: x~ = x + noise_level * N(0, 1) per pixel (additive isotropic Gaussian, also in
  the paper), not clipped.

Pixels are the stored grey levels in [0, 1] (uint8 / 255). The loss (`config.<name>.loss`):
`cross_entropy`, the paper's reconstruction cross-entropy for inputs in [0, 1]
(`jssl.losses.bernoulli_nll` of the grey levels, nats per image, mean over the batch), or
`mse`, the squared error of sigmoid(logits) summed per image.

Evaluation (`evaluate`): `reconstruction_mse`, the mean per-pixel squared error between the
test images and the reconstructions of their clean encodings; for the DAE also
`denoising_mse`, the same for encodings of corrupted test images (corrupted once, with a
fixed key, so every evaluation scores the same inputs); a PNG of test images (top row), their
corruption (DAE) and reconstructions (bottom row). There is no sampling: an autoencoder has no
prior to sample codes from (the VAE has, jssl/methods/vae.py).
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jssl import config as jssl_config
from jssl import losses
from jssl.config import ConfigError
from jssl.eval import evaluate as evaluation
from jssl.methods import common
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo
from jssl.models import ConvEncoder, ConvGenerator
from jssl.models.generative import START_SIZES

NOISES = ('none', 'masking', 'gaussian')
LOSSES = ('cross_entropy', 'mse')
_EVAL_NOISE_SEED = 4321  # the one corruption of the test images every evaluation uses


def corrupt(key: jax.Array, x: jax.Array, *, noise: str, level: float) -> jax.Array:
  """The denoising autoencoder's corruption of one image.

  Args:
    key: the example's key.
    x: [H, W, C] float grey levels in [0, 1].
    noise: 'none', 'masking' (each pixel zeroed with probability `level`) or 'gaussian'
      (x + level * N(0, 1) per pixel).
    level: the masking probability in [0, 1], or the Gaussian's standard deviation >= 0.

  Returns:
    [H, W, C] float32, the corrupted image (x itself for 'none' or level 0).
  """
  x = x.astype(jnp.float32)
  if noise == 'none' or level == 0:
    return x
  if noise == 'masking':
    return jnp.where(jax.random.bernoulli(key, level, x.shape), 0.0, x)
  if noise == 'gaussian':
    return x + level * jax.random.normal(key, x.shape)
  raise ValueError(f'noise={noise!r}; choose one of {NOISES}')


def _check(config: ml_collections.ConfigDict, info: TrainInfo, name: str) -> tuple[int, int]:
  c = config[name]
  size, channels = common.stored_square_image(config, info, name, START_SIZES)
  common.require_positive_ints(config, name, ('latent_dim', 'encoder_width', 'decoder_width',
                                              'eval_examples'))
  if c.loss not in LOSSES:
    raise ConfigError(f'config.{name}.loss={c.loss!r} is unknown; choose one of {LOSSES}.')
  if c.noise not in NOISES:
    raise ConfigError(f'config.{name}.noise={c.noise!r} is unknown; choose one of {NOISES}.')
  if name == 'ae' and c.noise != 'none':
    raise ConfigError(f'config.ae.noise={c.noise!r}: the plain autoencoder reconstructs clean '
                      'inputs; use the denoising autoencoder (experiments/configs/dae.py) for '
                      'corrupted ones.')
  level = c.noise_level
  if c.noise == 'masking' and not 0 <= level < 1:
    raise ConfigError(f'config.{name}.noise_level={level!r}: a masking probability must be in '
                      '[0, 1) (1 would destroy every pixel).')
  if c.noise == 'gaussian' and not level >= 0:
    raise ConfigError(f'config.{name}.noise_level={level!r}: a standard deviation must be >= 0.')
  return size, channels


def _create(config: ml_collections.ConfigDict, info: TrainInfo, name: str) -> Method:
  size, channels = _check(config, info, name)
  c = config[name]
  encoder = ConvEncoder(latent_dim=c.latent_dim, base_width=c.encoder_width, deterministic=True)
  decoder = ConvGenerator(image_size=size, channels=channels, base_width=c.decoder_width,
                          output='logits')
  denoising = c.noise != 'none'

  def init(rng, example):
    return common.init_encoder_decoder(encoder, decoder, rng, example, (size, size, channels),
                                       c.latent_dim)

  def prepare(rng, batch, constants):
    del constants
    x = batch['image'].astype(jnp.float32) / 255.0
    keys = jax.random.split(rng, x.shape[0])
    noisy = jax.vmap(lambda k, image: corrupt(k, image, noise=c.noise, level=c.noise_level))(
        keys, x)
    return {'x': x, 'noisy': noisy, 'label': batch['label'], 'index': batch['index']}

  def reconstruct(params, batch_stats, x, train):
    """(logits [B, H, W, C], code [B, Z], new batch_stats) of the decoder on x's code."""
    code = encoder.apply({'params': params['encoder']}, x)
    variables = {'params': params['decoder'], 'batch_stats': batch_stats['decoder']}
    if train:
      logits, updates = decoder.apply(variables, code, train=True, mutable=['batch_stats'])
      return logits, code, {'decoder': updates['batch_stats']}
    return decoder.apply(variables, code, train=False), code, batch_stats

  def loss(params, batch_stats, extra, inputs, step, rng):
    del step, rng
    x = inputs['x']
    logits, code, batch_stats = reconstruct(params, batch_stats, inputs['noisy'], True)
    squared = jnp.sum(jnp.square(jax.nn.sigmoid(logits) - x).reshape(x.shape[0], -1), axis=-1)
    per_example = losses.bernoulli_nll(logits, x) if c.loss == 'cross_entropy' else squared
    metrics = {'reconstruction_mse': jnp.mean(squared) / (size * size * channels)}
    return jnp.mean(per_example), LossOutput(batch_stats=batch_stats, extra=extra,
                                             metrics=metrics, features=code)

  def represent(params, batch_stats, batch, constants):
    del batch_stats, constants
    return encoder.apply({'params': params['encoder']}, batch['image'].astype(jnp.float32) / 255.0)

  def scores(params, batch_stats, x, noisy):
    """Per example: the clean and the corrupted input's reconstruction MSE; reconstructions."""
    def mse(inputs):
      recon = jax.nn.sigmoid(reconstruct(params, batch_stats, inputs, False)[0])
      return jnp.mean(jnp.square(recon - x).reshape(x.shape[0], -1), axis=-1), recon
    (clean, recon), (denoised, recon_noisy) = mse(x), mse(noisy)
    return clean, denoised, recon, recon_noisy

  jitted = {}

  def evaluate(context):
    state, test = context.state, context.dataset.test
    if not jitted:  # compiled once per run, outputs replicated for every process
      jitted['scores'] = evaluation.replicated_jit(scores, context.mesh)
      jitted['corrupt'] = jax.jit(jax.vmap(
          lambda k, image: corrupt(k, image, noise=c.noise, level=c.noise_level)))
    batch_size = context.config.eval.batch_size
    count = min(len(test), c.eval_examples)
    sums = np.zeros(2)
    first = None
    for start in range(0, count, batch_size):
      indices = np.arange(start, start + batch_size) % count  # padded, dropped below
      x = test.get_batch(indices)['image'].astype(np.float32) / 255.0
      keys = jax.random.split(jax.random.fold_in(jax.random.key(_EVAL_NOISE_SEED), start),
                              batch_size)
      noisy = np.asarray(jitted['corrupt'](keys, x))
      clean, denoised, recon, recon_noisy = jitted['scores'](
          state.params, state.batch_stats, evaluation.global_array(x, context.mesh),
          evaluation.global_array(noisy, context.mesh))
      keep = min(batch_size, count - start)
      sums += [np.sum(np.asarray(v)[:keep], dtype=np.float64) for v in (clean, denoised)]
      if first is None:
        first = [x[:16], np.asarray(recon)[:16]]
        if denoising:
          first[1:] = [np.clip(noisy[:16], 0, 1), np.asarray(recon_noisy)[:16]]
    results = {'reconstruction_mse': sums[0] / count}
    if denoising:
      results['denoising_mse'] = sums[1] / count
    common.write_reconstructions(context, first)
    return results

  return Method(name=name, views=(), features_dim=c.latent_dim, init=init, loss=loss,
                encode=None, prepare=prepare, represent=represent, evaluate=evaluate)


def create_ae(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """The autoencoder, from `config.ae` (latent_dim, widths, loss, eval_examples)."""
  return _create(config, info, 'ae')


def create_dae(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """The denoising autoencoder, from `config.dae` (the AE's fields + noise, noise_level)."""
  return _create(config, info, 'dae')


DATASET_VARIANTS = ('digits', 'fashion_mnist')


def default_config(method: str, variant: str | None) -> ml_collections.ConfigDict:
  """The config of experiments/configs/ae.py (`method`='ae') and dae.py ('dae') on digits
  or Fashion-MNIST (`variant`), without noise."""
  variant = variant or 'digits'
  if variant not in DATASET_VARIANTS:
    raise ValueError(f'unknown variant {variant!r} of {method}.py; choose one of: '
                     f'{", ".join(DATASET_VARIANTS)}')
  # The dataset's preset first: it sets batch and optimizer fields the lines below override.
  config = jssl_config.apply_data_preset(jssl_config.base_config(), variant)
  config.method = method
  config[method] = ml_collections.ConfigDict({
      'latent_dim': 16,  # the bottleneck: the code the probes read
      'encoder_width': 32,  # ConvEncoder's first width (doubles per stride-2 layer)
      'decoder_width': 32,  # ConvGenerator's last width (doubles towards the start grid)
      'loss': 'cross_entropy',  # of the grey levels, as Vincent et al. 2008; or 'mse'
      'noise': 'none',  # 'masking' / 'gaussian' (the DAE's)
      'noise_level': 0.0,  # masking probability, or the Gaussian's standard deviation
      'eval_examples': 10000,  # test images reconstruction_mse is averaged over
  })
  jssl_config.apply_pixel_model_defaults(config)
  if variant == 'digits':
    config.dataset.image_size = 8
    config[method].latent_dim = 8
    config.num_steps = 1500
    config.optimizer.base_learning_rate = 2e-3 * 256 / 128
  else:
    config.model.widths = None
    config.num_steps = 4000
    config.optimizer.base_learning_rate = 1e-3 * 256 / 128
  return config
