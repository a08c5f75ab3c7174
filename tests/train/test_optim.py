"""Learning-rate schedule and the weight-decay / trust-ratio masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl import config as jssl_config
from jssl.train import optim


def _config(name='lars', **overrides):
  config = jssl_config.base_config()
  config.optimizer.name = name
  config.batch_size = 512
  config.optimizer.base_learning_rate = 0.3
  config.optimizer.warmup_steps = 10
  config.optimizer.weight_decay = 0.1
  for key, value in overrides.items():
    config.optimizer[key] = value
  return config


def _params():
  return {'Conv_0': {'kernel': jnp.ones((3, 3, 1, 2))},
          'Dense_0': {'kernel': jnp.ones((2, 2)), 'bias': jnp.ones((2,))},
          'BatchNorm_0': {'scale': jnp.ones((2,)), 'bias': jnp.ones((2,))}}


def test_mask_selects_kernels_only():
  mask = optim.weight_decay_mask(_params())
  assert mask == {'Conv_0': {'kernel': True}, 'Dense_0': {'kernel': True, 'bias': False},
                  'BatchNorm_0': {'scale': False, 'bias': False}}


def test_schedule_warms_up_linearly_to_the_scaled_peak_then_decays_to_zero():
  schedule = optim.learning_rate_schedule(_config(), total_steps=110)
  peak = 0.3 * 512 / 256
  assert float(schedule(0)) == 0.0
  np.testing.assert_allclose(float(schedule(5)), peak / 2, rtol=1e-6)
  np.testing.assert_allclose(float(schedule(10)), peak, rtol=1e-6)
  np.testing.assert_allclose(float(schedule(60)), peak / 2, rtol=1e-5)  # half-way down the cosine
  assert float(schedule(110)) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize('name', optim.OPTIMIZERS)
def test_zero_gradient_decays_only_kernels(name):
  tx, _ = optim.create_optimizer(_config(name, warmup_steps=0), total_steps=100)
  params = _params()
  zero = jax.tree_util.tree_map(jnp.zeros_like, params)
  updates, _ = tx.update(zero, tx.init(params), params)
  assert float(jnp.abs(updates['Dense_0']['kernel']).max()) > 0  # weight decay acts
  for leaf in (updates['Dense_0']['bias'], updates['BatchNorm_0']['scale'],
               updates['BatchNorm_0']['bias']):
    assert float(jnp.abs(leaf).max()) == 0.0


def test_lars_scales_kernel_steps_by_trust_ratio_but_not_biases():
  tx, _ = optim.create_optimizer(_config('lars', warmup_steps=0, weight_decay=0.0,
                                         momentum=0.0), total_steps=1000)
  params = _params()
  grads = jax.tree_util.tree_map(lambda x: 2.0 * jnp.ones_like(x), params)
  updates, _ = tx.update(grads, tx.init(params), params)
  lr = 0.3 * 512 / 256
  # Kernel: lr * trust * ||w|| / ||g|| * g = lr * 0.001 * (1/2) * 2 = lr * 0.001 per entry.
  np.testing.assert_allclose(updates['Dense_0']['kernel'], -lr * 0.001, rtol=1e-5)
  np.testing.assert_allclose(updates['Dense_0']['bias'], -lr * 2.0, rtol=1e-5)
