"""Deep InfoMax: the loss is the weighted estimators on the critics of the chosen feature map,
prior matching is a second player with the GAN losses, the encoder's sown feature maps leave
its outputs unchanged, config errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl import losses
from jssl import models
from jssl.config import ConfigError
from jssl.methods import TrainInfo
from jssl.methods import dim
from jssl.models.resnet import feature_maps
from tiny import initialise, tiny_config

INFO = TrainInfo(num_examples=64, num_classes=10, image_channels=1, num_steps=10)


def _config(**fields):
  config = tiny_config('dim', **{'critic_dim': 8, 'prior_hidden': (8,), **fields})
  config.model.widths = (4, 8, 8)
  return config


def test_feature_maps_are_sown_without_changing_the_encoder():
  encoder = models.create_encoder('small_cnn', widths=(4, 8, 8))
  images = jax.random.uniform(jax.random.key(0), (2, 16, 16, 1))
  variables = encoder.init(jax.random.key(1), images, train=False)
  assert set(variables) == {'params', 'batch_stats'}  # nothing new in checkpoints
  plain = encoder.apply(variables, images, train=False)
  h, state = encoder.apply(variables, images, train=False, mutable=['intermediates'])
  np.testing.assert_array_equal(h, plain)
  maps = feature_maps(state['intermediates'])
  assert [m.shape for m in maps] == [(2, 16, 16, 4), (2, 8, 8, 8), (2, 4, 4, 8)]
  np.testing.assert_allclose(maps[-1].mean((1, 2)), h, rtol=1e-6)


def test_loss_is_the_weighted_estimators_on_the_critics(estimator='infonce', global_weight=0.5):
  # One setting (each estimator is checked against loops in tests/losses/test_predictive.py).
  config = _config(estimator=estimator, global_weight=global_weight, prior_weight=0.0,
                   local_weight=0.7)
  method = dim.create(config, INFO)
  assert method.players is None
  params, batch_stats, extra, batch = initialise(method)
  encoder = models.encoder_from_config(config.model)
  critic = dim.ResidualCritic(8)

  @jax.jit
  def both(params):
    """The method's loss, features and gradients, and the reference, in one program."""
    loss = lambda p: method.loss(p, batch_stats, extra, batch, jnp.int32(0), jax.random.key(2))
    (value, out), grads = jax.value_and_grad(loss, has_aux=True)(params)
    h, state = encoder.apply({'params': params['encoder'], 'batch_stats': batch_stats['encoder']},
                             batch.views[0], train=True, mutable=['batch_stats', 'intermediates'])
    local_map = feature_maps(state['intermediates'])[-2]
    local = critic.apply({'params': params['local_head']}, local_map)
    want = 0.7 * losses.dim_local_global(local.reshape(8, -1, 8), critic.apply(
        {'params': params['global_head']}, h), estimator=estimator)
    summary = critic.apply({'params': params['map_head']}, local_map.reshape(8, -1))
    want += global_weight * losses.dim_local_global(
        summary[:, None], critic.apply({'params': params['global_map_head']}, h),
        estimator=estimator)
    return value, out.features, grads, want, h

  value, features, grads, want, h = both(params)
  np.testing.assert_allclose(value, want, rtol=1e-5)
  np.testing.assert_allclose(features, h, rtol=1e-5, atol=1e-6)
  for part in params:
    assert sum(float(jnp.sum(g**2)) for g in jax.tree_util.tree_leaves(grads[part])) > 0, part


def test_prior_matching_is_a_second_player():
  method = dim.create(_config(prior_weight=0.5), INFO)
  assert [p.name for p in method.players] == ['dim', 'prior']
  assert method.players[1].params == ('prior',)
  params, batch_stats, extra, batch = initialise(method)
  dim_value, out = jax.jit(method.players[0].loss)(params, batch_stats, extra, batch,
                                                   jnp.int32(0), jax.random.key(2))
  h = out.features
  logits = dim.PriorDiscriminator((8,)).apply({'params': params['prior']}, h)
  fooled = jnp.mean(jax.nn.softplus(-logits))
  np.testing.assert_allclose(out.metrics['prior_generator_loss'], fooled, rtol=1e-6)
  np.testing.assert_allclose(dim_value, out.metrics['local_mi_loss'] + 0.5 * fooled, rtol=1e-5)
  value, _ = jax.jit(method.players[1].loss)(params, batch_stats, extra, batch, jnp.int32(0),
                                             jax.random.key(3))
  samples = jax.random.uniform(jax.random.key(3), h.shape)
  real = dim.PriorDiscriminator((8,)).apply({'params': params['prior']}, samples)
  np.testing.assert_allclose(value, losses.gan_discriminator(real, logits), rtol=1e-5)
  # The discriminator's loss sends no gradient to the encoder.
  grads = jax.jit(jax.grad(lambda p: method.players[1].loss(
      p, batch_stats, extra, batch, jnp.int32(0), jax.random.key(3))[0]))(params)
  assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree_util.tree_leaves(grads['encoder']))


@pytest.mark.parametrize('fields, message', [
    ({'estimator': 'mine'}, "estimator='mine' is unknown"),
    ({'local_weight': 0.0}, 'both 0'),
    ({'prior_weight': -1.0}, 'must be >= 0'),
    ({'prior_hidden': ()}, 'prior_hidden=\\(\\) must be positive widths'),
])
def test_bad_settings_are_clear_errors(fields, message):
  with pytest.raises(ConfigError, match=message):
    dim.create(_config(**fields), INFO)


def test_a_missing_feature_map_is_a_clear_error():
  method = dim.create(_config(local_block=5), INFO)
  with pytest.raises(ConfigError, match='local_block=5 is not one of the encoder\'s 3'):
    initialise(method)
