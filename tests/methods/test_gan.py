"""The GAN: its two players in the step, the Fréchet distance against closed forms, the
evaluation (sample grid, fixed noise), bad configs."""

import os

import jax
import numpy as np
import pytest

from jssl.config import ConfigError
from jssl.eval.generation import frechet_distance
from jssl.train.loop import Run
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
])
def test_bad_configs_are_refused(tmp_path, field, value, match):
  with pytest.raises(ConfigError, match=match):
    Run(_config(**{field: value}), str(tmp_path), devices=jax.devices()[:1])


def test_a_missing_player_optimizer_is_refused(tmp_path):
  config = _config()
  del config.gan['generator_optimizer']
  with pytest.raises(ConfigError, match='gan.generator_optimizer is missing'):
    Run(config, str(tmp_path), devices=jax.devices()[:1])
