"""GAN (Goodfellow et al. 2014) with DCGAN's networks (Radford et al. 2016) as two players.

The discriminator (`jssl.models.ConvDiscriminator`) and the generator
(`jssl.models.ConvGenerator`, tanh output on images scaled to [-1, 1]) are two players of the
shared step: the discriminator takes `config.gan.discriminator_steps` updates on the
batch's real images against fresh generated ones (`jssl.losses.gan_discriminator`), then the
generator one update against the *updated* discriminator with the non-saturating loss
(`jssl.losses.gan_generator`), each with its own Adam (`config.gan.discriminator_optimizer`,
`config.gan.generator_optimizer`; DCGAN: learning rate 2e-4, beta1 0.5), both optimizer states
in the one `TrainState`.

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
  return height, channels


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds the two-player GAN from `config.gan`."""
  size, channels = _check(config, info)
  c = config.gan
  generator = ConvGenerator(image_size=size, channels=channels, base_width=c.generator_width,
                            output='tanh')
  discriminator = ConvDiscriminator(base_width=c.discriminator_width, norm=c.discriminator_norm)
  features_dim = discriminator.features_dim_for(size)

  def init(rng, example):
    del example
    g_rng, d_rng = jax.random.split(rng)
    g_vars = generator.init(g_rng, jnp.zeros((2, c.latent_dim)), train=True)
    d_vars = discriminator.init(d_rng, jnp.zeros((2, size, size, channels)), train=True)
    params = {'generator': g_vars['params'], 'discriminator': d_vars['params']}
    batch_stats = {'generator': g_vars.get('batch_stats', {}),
                   'discriminator': d_vars.get('batch_stats', {})}
    return params, batch_stats, {}

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
    value = losses.gan_discriminator(real_logits, fake_logits)
    metrics = {'d_real': jnp.mean(jax.nn.sigmoid(real_logits)),
               'd_fake': jnp.mean(jax.nn.sigmoid(fake_logits))}
    return value, LossOutput(batch_stats={'generator': g_stats, 'discriminator': d_stats},
                             extra=extra, metrics=metrics, features=real_features)

  def generator_loss(params, batch_stats, extra, inputs, step, rng):
    del step
    fake, g_stats = generate(params, batch_stats, rng, inputs['real'].shape[0], True)
    fake_logits, _, d_stats = discriminate(params, batch_stats['discriminator'], fake)
    value = losses.gan_generator(fake_logits)
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

  def sample(params, batch_stats, key):
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
    samples = np.asarray(cache['sample'](state.params, state.batch_stats,
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
