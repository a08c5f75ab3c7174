"""The GAN: its two players in the step, the Fréchet distance against closed forms, the
evaluation (sample grid, fixed noise), the stabilisers (loss kinds, R1, spectral norm, the
generator's EMA), bad configs."""

import os

import jax
import numpy as np
import pytest

from jssl import losses
from jssl.config import ConfigError
from jssl.eval.generation import frechet_distance
from jssl.models import ConvDiscriminator, ConvGenerator
from jssl.train.loop import Run
from jssl.train.step import prepare_inputs
import tiny


def _config(**gan):
  config = tiny.tiny_config('gan', variant='digits', generator_width=4, discriminator_width=4,
                            latent_dim=4, eval_samples=64, classifier_steps=5)
  config.batch_size = 16
  config.num_steps = 3
  config.eval.batch_size = 128
  config.gan.update(gan)
  return config


def test_frechet_distance_closed_forms():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(4000, 3))
  assert abs(frechet_distance(a, a)) < 1e-8
  shift = np.array([1.0, -2.0, 0.5])
  # Same covariance: the distance is the squared distance of the means.
  np.testing.assert_allclose(frechet_distance(a, a + shift), np.sum(shift ** 2), rtol=1e-6)
  # Diagonal covariances: sum over dimensions of (s1 - s2)^2 (standard deviations).
  b = rng.normal(size=(4000, 3)) * np.array([1.0, 2.0, 3.0])
  ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  want = (np.sum((a.mean(0) - b.mean(0)) ** 2)
          + np.trace(ca + cb - 2 * _naive_sqrtm(ca @ cb)))
  np.testing.assert_allclose(frechet_distance(a, b), want, rtol=1e-6)
  np.testing.assert_allclose(frechet_distance(a, b), (0 ** 2 + 1 ** 2 + 2 ** 2), rtol=0.05)


def _naive_sqrtm(m):
  values, vectors = np.linalg.eig(m)
  return np.real(vectors @ np.diag(np.sqrt(values.astype(complex))) @ np.linalg.inv(vectors))


def test_two_players_train_and_evaluate(tmp_path):
  run = Run(_config(discriminator_steps=2), str(tmp_path), devices=jax.devices()[:1])
  assert [p.name for p in run.method.players] == ['discriminator', 'generator']
  assert set(run.state.opt_state) == {'discriminator', 'generator'}
  before = jax.device_get(run.state.params)
  metrics = run.advance(next(run.iterator))
  after = jax.device_get(run.state.params)
  for part in ('discriminator', 'generator'):  # each player moved its own parameters
    moved = [np.any(x != y) for x, y in zip(jax.tree_util.tree_leaves(before[part]),
                                            jax.tree_util.tree_leaves(after[part]))]
    assert any(moved), part
  assert {'loss_discriminator', 'loss_generator', 'd_real', 'd_fake'} <= set(metrics)
  np.testing.assert_allclose(metrics['loss'],
                             metrics['loss_discriminator'] + metrics['loss_generator'], rtol=1e-6)
  # Two discriminator updates per step: its Adam counted two steps, the generator's one.
  counts = {name: [int(x) for x in jax.tree_util.tree_leaves(state)
                   if np.asarray(x).dtype == np.int32]
            for name, state in run.state.opt_state.items()}
  assert 2 in counts['discriminator'] and 1 in counts['generator'], counts
  results = run.evaluate()
  assert np.isfinite(results['frechet_distance']) and results['frechet_distance'] > 0
  assert 0 <= results['frechet_classifier_top1'] <= 1 and 0 <= results['linear_top1'] <= 1
  assert os.path.getsize(tmp_path / 'samples_step1.png') > 100
  assert run.evaluate()['frechet_distance'] == results['frechet_distance']  # fixed noise
  run.iterator.close()


@pytest.mark.parametrize('field, value, match', [
    ('discriminator_steps', 0, 'at least 1'),
    ('discriminator_norm', 'spectral', 'unknown'),
    ('latent_dim', 0, 'positive'),
    ('loss', 'wasserstein', "loss='wasserstein' is unknown"),
    ('r1_weight', 10.0, 'needs a discriminator whose outputs are each a function of one'),
    ('generator_ema', 1.0, r'must be in \[0, 1\)'),
])
def test_bad_configs_are_refused(tmp_path, field, value, match):
  with pytest.raises(ConfigError, match=match):
    Run(_config(**{field: value}), str(tmp_path), devices=jax.devices()[:1])


def test_a_missing_player_optimizer_is_refused(tmp_path):
  config = _config()
  del config.gan['generator_optimizer']
  with pytest.raises(ConfigError, match='gan.generator_optimizer is missing'):
    Run(config, str(tmp_path), devices=jax.devices()[:1])


def test_stabilisers_hinge_r1_spectral_norm_and_generator_ema(tmp_path):
  config = _config(loss='hinge', r1_weight=10.0, discriminator_norm='none', spectral_norm=True,
                   generator_ema=0.5)
  run = Run(config, str(tmp_path), devices=jax.devices()[:1])
  state = run.state
  initial_generator = jax.device_get(state.params['generator'])
  np.testing.assert_equal(jax.device_get(state.extra['generator_ema']), initial_generator)
  assert any(name.startswith('sn_') for name in state.batch_stats['discriminator'])

  # The discriminator's loss is the hinge loss plus gamma / 2 times R1 of the real batch,
  # recomputed here from the networks with the same fakes (the same key).
  batch = run.device_batch(next(run.iterator))
  inputs = prepare_inputs(run.method, jax.random.key(3), batch, {})
  rng = jax.random.key(4)
  value, out = run.method.players[0].loss(state.params, state.batch_stats, state.extra, inputs,
                                          0, rng)
  generator = ConvGenerator(image_size=8, channels=1, base_width=4, output='tanh')
  discriminator = ConvDiscriminator(base_width=4, norm='none', spectral_norm=True)
  z = jax.random.normal(rng, (16, 4))
  fake, _ = generator.apply({'params': state.params['generator'],
                             'batch_stats': state.batch_stats['generator']}, z, train=True,
                            mutable=['batch_stats'])
  variables = {'params': state.params['discriminator'],
               'batch_stats': state.batch_stats['discriminator']}
  (real_logits, _), stats = discriminator.apply(variables, inputs['real'], train=True,
                                                mutable=['batch_stats'])
  (fake_logits, _), stats = discriminator.apply({**variables, **stats}, fake, train=True,
                                                mutable=['batch_stats'])
  disc = lambda x: discriminator.apply({**variables, **stats}, x, train=False)[0]
  r1 = losses.r1_penalty(disc, inputs['real'])
  np.testing.assert_allclose(out.metrics['r1'], r1, rtol=1e-5)
  assert float(r1) > 0
  want = losses.gan_discriminator(real_logits, fake_logits, kind='hinge') + 5.0 * r1
  np.testing.assert_allclose(value, want, rtol=1e-5)

  # The generator's EMA: each update averages in the weights the update started from.
  run.advance(next(run.iterator))
  after_one = jax.device_get(run.state.params['generator'])
  for ema, start in zip(  # step 1 started from the initial weights: the EMA is unchanged
      jax.tree_util.tree_leaves(jax.device_get(run.state.extra['generator_ema'])),
      jax.tree_util.tree_leaves(initial_generator)):
    np.testing.assert_allclose(ema, start, rtol=1e-6)
  run.advance(next(run.iterator))
  for ema, start, one in zip(
      jax.tree_util.tree_leaves(jax.device_get(run.state.extra['generator_ema'])),
      jax.tree_util.tree_leaves(initial_generator), jax.tree_util.tree_leaves(after_one)):
    np.testing.assert_allclose(ema, 0.5 * start + 0.5 * one, rtol=1e-5, atol=1e-7)
  results = run.evaluate()  # samples from the EMA weights
  assert np.isfinite(results['frechet_distance'])
  run.iterator.close()


def test_spectral_norm_estimates_the_largest_singular_value():
  network = ConvDiscriminator(base_width=4, norm='none', spectral_norm=True)
  x = jax.random.normal(jax.random.key(0), (3, 16, 16, 1))
  variables = network.init(jax.random.key(1), x, train=True)
  for _ in range(30):  # one power iteration per training call
    _, stats = network.apply(variables, x, train=True, mutable=['batch_stats'])
    variables = {**variables, **stats}
  kernel = np.asarray(variables['params']['conv_1']['kernel'])
  top = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
  np.testing.assert_allclose(variables['batch_stats']['sn_conv_1']['conv_1/kernel/sigma'], top,
                             rtol=1e-4)
  # The layer computes with the kernel divided by that estimate.
  plain = ConvDiscriminator(base_width=4, norm='none')
  scaled = jax.tree_util.tree_map(lambda a: a, variables['params'])
  for name in scaled:
    sigma = variables['batch_stats'][f'sn_{name}'][f'{name}/kernel/sigma']
    scaled[name] = {**scaled[name], 'kernel': scaled[name]['kernel'] / sigma}
  np.testing.assert_allclose(network.apply(variables, x, train=False)[0],
                             plain.apply({'params': scaled}, x, train=False)[0], rtol=1e-4,
                             atol=1e-5)
