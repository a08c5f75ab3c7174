"""GAN (Goodfellow et al. 2014) with DCGAN's networks (Radford et al. 2016) as two players.

The discriminator (`jssl.models.ConvDiscriminator`) and the generator
(`jssl.models.ConvGenerator`, tanh output on images scaled to [-1, 1]) are two players of the
shared step: the discriminator takes `config.gan.discriminator_steps` updates on the
batch's real images against fresh generated ones (`jssl.losses.gan_discriminator`), then the
generator one update against the *updated* discriminator with the non-saturating loss
(`jssl.losses.gan_generator`), each with its own Adam (`config.gan.discriminator_optimizer`,
`config.gan.generator_optimizer`; DCGAN: learning rate 2e-4, beta1 0.5), both optimizer states
in the one `TrainState`.

Stabilisers, each a config option (defaults: DCGAN's plain training):
* `gan.loss`: the kind of `jssl.losses.gan_discriminator` / `gan_generator`:
  'non_saturating' (the default), 'hinge' or 'least_squares';
* `gan.r1_weight` gamma: the discriminator's loss gets gamma / 2 * `jssl.losses.r1_penalty`
  on the real batch (Mescheder et al. 2018); it needs a discriminator without BatchNorm
  (`gan.discriminator_norm` 'layer' or 'none'), whose gradient would mix examples;
* `gan.spectral_norm`: every discriminator kernel divided by its largest singular value
  (Miyato et al. 2018), one power iteration per training call;
* `gan.discriminator_steps` k: discriminator updates per generator update;
* `gan.generator_ema` decay: an exponential moving average of the generator's weights, kept in
  the checkpointed `extra` and updated at every generator update (from the weights the
  update starts from), samples and `frechet_distance` from it; the BatchNorm statistics are
  the trained generator's.

Evaluation: a PNG grid of samples (fixed noise, so grids of successive evaluations are
comparable) and `frechet_distance` between generated and test images in the feature space of a
classifier trained on the training split (`jssl.eval.generation`; not FID: no Inception
weights offline). The random-init evaluation (step 0) gives the untrained generator's value.
The representation probed by kNN / linear is the discriminator's last hidden layer (DCGAN's
section 5.1 used discriminator features for classification).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jssl import losses
from jssl.config import ConfigError
from jssl.eval import evaluate as evaluation
from jssl.eval import generation
from jssl.eval import images as image_files
from jssl.methods import common
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import Player
from jssl.methods.base import TrainInfo
from jssl.models import ConvDiscriminator, ConvGenerator
from jssl.models.generative import NORMS, START_SIZES

_SAMPLE_SEED = 4321  # the fixed noise of every evaluation's samples


def _check(config: ml_collections.ConfigDict, info: TrainInfo) -> tuple[int, int]:
  c = config.gan
  height, channels = common.stored_square_image(config, info, 'gan', START_SIZES)
  steps = c.discriminator_steps
  if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
    raise ConfigError(f'config.gan.discriminator_steps={steps!r}: the discriminator must take at '
                      'least 1 update per generator update (k >= 1; DCGAN uses 1).')
  common.require_positive_ints(config, 'gan', ('latent_dim', 'generator_width',
                                               'discriminator_width', 'eval_samples',
                                               'classifier_steps'))
  if c.eval_samples < 2:
    raise ConfigError('config.gan.eval_samples must be >= 2 (a covariance needs two samples).')
  if c.discriminator_norm not in NORMS:
    raise ConfigError(f'config.gan.discriminator_norm={c.discriminator_norm!r} is unknown; '
                      f'choose one of {NORMS}.')
  if c.loss not in losses.GAN_LOSSES:
    raise ConfigError(f'config.gan.loss={c.loss!r} is unknown; choose one of '
                      f'{list(losses.GAN_LOSSES)}.')
  if not c.r1_weight >= 0:
    raise ConfigError(f'config.gan.r1_weight={c.r1_weight!r} must be >= 0 (0: no R1 penalty).')
  if c.r1_weight > 0 and c.discriminator_norm == 'batch':
    raise ConfigError('config.gan.r1_weight > 0 needs a discriminator whose outputs are each a '
                      "function of one example: BatchNorm mixes the batch into the gradient. Set "
                      "--config.gan.discriminator_norm=none (or 'layer').")
  if not 0 <= c.generator_ema < 1:
    raise ConfigError(f'config.gan.generator_ema={c.generator_ema!r} must be in [0, 1) (0: no '
                      'EMA; e.g. 0.999).')
  return height, channels


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds the two-player GAN from `config.gan`."""
  size, channels = _check(config, info)
  c = config.gan
  generator = ConvGenerator(image_size=size, channels=channels, base_width=c.generator_width,
                            output='tanh')
  discriminator = ConvDiscriminator(base_width=c.discriminator_width, norm=c.discriminator_norm,
                                    spectral_norm=c.spectral_norm)
  features_dim = discriminator.features_dim_for(size)

  def init(rng, example):
    del example
    g_rng, d_rng = jax.random.split(rng)
    g_vars = generator.init(g_rng, jnp.zeros((2, c.latent_dim)), train=True)
    d_vars = discriminator.init(d_rng, jnp.zeros((2, size, size, channels)), train=True)
    params = {'generator': g_vars['params'], 'discriminator': d_vars['params']}
    batch_stats = {'generator': g_vars.get('batch_stats', {}),
                   'discriminator': d_vars.get('batch_stats', {})}
    extra = {'generator_ema': g_vars['params']} if c.generator_ema else {}
    return params, batch_stats, extra

  def prepare(rng, batch, constants):
    del rng, constants
    real = batch['image'].astype(jnp.float32) / 127.5 - 1.0
    return {'real': real, 'label': batch['label'], 'index': batch['index']}

  def generate(params, batch_stats, key, count, train):
    z = jax.random.normal(key, (count, c.latent_dim))
    variables = {'params': params['generator'], 'batch_stats': batch_stats['generator']}
    if not train:
      return generator.apply(variables, z, train=False), batch_stats['generator']
    fake, updates = generator.apply(variables, z, train=True, mutable=['batch_stats'])
    return fake, updates['batch_stats']

  def discriminate(params, d_stats, images):
    (logits, features), updates = discriminator.apply(
        {'params': params['discriminator'], 'batch_stats': d_stats}, images, train=True,
        mutable=['batch_stats'])
    return logits, features, updates.get('batch_stats', {})

  def discriminator_loss(params, batch_stats, extra, inputs, step, rng):
    del step
    real = inputs['real']
    fake, g_stats = generate(params, batch_stats, rng, real.shape[0], True)
    fake = jax.lax.stop_gradient(fake)
    real_logits, real_features, d_stats = discriminate(params, batch_stats['discriminator'], real)
    fake_logits, _, d_stats = discriminate(params, d_stats, fake)
    value = losses.gan_discriminator(real_logits, fake_logits, kind=c.loss)
    metrics = {'d_real': jnp.mean(jax.nn.sigmoid(real_logits)),
               'd_fake': jnp.mean(jax.nn.sigmoid(fake_logits))}
    if c.r1_weight:  # of the discriminator with this step's spectral-norm estimates
      disc_fn = lambda x: discriminator.apply(
          {'params': params['discriminator'], 'batch_stats': d_stats}, x, train=False)[0]
      metrics['r1'] = losses.r1_penalty(disc_fn, real)
      value = value + 0.5 * c.r1_weight * metrics['r1']
    return value, LossOutput(batch_stats={'generator': g_stats, 'discriminator': d_stats},
                             extra=extra, metrics=metrics, features=real_features)

  def generator_loss(params, batch_stats, extra, inputs, step, rng):
    del step
    fake, g_stats = generate(params, batch_stats, rng, inputs['real'].shape[0], True)
    fake_logits, _, d_stats = discriminate(params, batch_stats['discriminator'], fake)
    value = losses.gan_generator(fake_logits, kind=c.loss)
    if c.generator_ema:
      extra = {**extra, 'generator_ema': jax.tree_util.tree_map(
          lambda ema, p: c.generator_ema * ema + (1 - c.generator_ema) * jax.lax.stop_gradient(p),
          extra['generator_ema'], params['generator'])}
    return value, LossOutput(batch_stats={'generator': g_stats, 'discriminator': d_stats},
                             extra=extra, metrics={}, features=None)

  players = (
      Player(name='discriminator', params=('discriminator',), loss=discriminator_loss,
             steps=c.discriminator_steps, optimizer='gan.discriminator_optimizer'),
      Player(name='generator', params=('generator',), loss=generator_loss,
             optimizer='gan.generator_optimizer'),
  )

  def represent(params, batch_stats, batch, constants):
    del constants
    images = batch['image'].astype(jnp.float32) / 127.5 - 1.0
    _, features = discriminator.apply(
        {'params': params['discriminator'], 'batch_stats': batch_stats['discriminator']},
        images, train=False)
    return features

  def sample(params, batch_stats, extra, key):
    if c.generator_ema:  # the averaged weights, with the trained generator's statistics
      params = {**params, 'generator': extra['generator_ema']}
    images, _ = generate(params, batch_stats, key, c.eval_samples, False)
    return (images + 1.0) / 2.0  # [0, 1]

  cache = {}  # this run's evaluation instruments: the classifier and the compiled sampler

  def evaluate(context):
    """`frechet_distance` of `eval_samples` generated vs as many test images, and a grid."""
    if 'classifier' not in cache:
      cache['classifier'] = generation.train_feature_classifier(
          context.dataset, steps=c.classifier_steps, seed=0)
      cache['sample'] = evaluation.replicated_jit(sample, context.mesh)
      test = context.dataset.test
      count = min(len(test), c.eval_samples)
      cache['real'] = cache['classifier'].features(test.get_batch(np.arange(count))['image'])
    state = context.state
    samples = np.asarray(cache['sample'](state.params, state.batch_stats, state.extra,
                                         jax.random.key(_SAMPLE_SEED)))
    distance = generation.frechet_distance(cache['real'], cache['classifier'].features(samples))
    if context.workdir is not None and jax.process_index() == 0:
      image_files.save_grid(os.path.join(context.workdir, f'samples_step{context.step}.png'),
                            samples[:64], columns=8, scale=3)
    return {'frechet_distance': distance,
            'frechet_classifier_top1': cache['classifier'].test_top1}

  return Method(name='gan', views=(), features_dim=features_dim, init=init, loss=None,
                encode=None, prepare=prepare, players=players, represent=represent,
                evaluate=evaluate)
