"""BYOL: the loss against a NumPy reference (online predictions vs the EMA target's projections
of the other view), the EMA update with the cosine momentum, stop-gradients into the target,
the no-predictor ablation, config errors and a short digits run."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.config import ConfigError
from jssl.methods import TrainInfo
from jssl.methods import byol
from jssl.methods import common
from tiny import tiny_config, initialise, unit

STEP, NUM_STEPS = 3, 10


def _config(**overrides):
  return tiny_config('byol', **{'predictor_hidden_dim': 16, 'momentum': 0.9, **overrides})


INFO = TrainInfo(num_examples=64, num_classes=10, image_channels=1, num_steps=NUM_STEPS)


def _setup(config):
  method = byol.create(config, INFO)
  # Shifted: the online network differs from the target, so that the EMA step is visible.
  return (method, *initialise(method, [8, 8], shift=0.05))


def _naive_byol(p, z):
  return float(np.mean(2.0 - 2.0 * np.sum(unit(p) * unit(z), -1)))


@pytest.mark.parametrize('predictor_hidden_dim', [16, 0])
def test_loss_matches_reference_and_target_is_the_ema(predictor_hidden_dim):
  config = _config(predictor_hidden_dim=predictor_hidden_dim)
  method, params, batch_stats, extra, batch = _setup(config)
  assert ('predictor' in params) == (predictor_hidden_dim > 0)
  value, out = jax.jit(method.loss)(params, batch_stats, extra, batch, jnp.int32(STEP),
                                    jax.random.key(2))

  # The paper's cosine schedule from τ_base = 0.9 and the EMA of encoder + projector only.
  tau = 1.0 - (1.0 - 0.9) * (math.cos(math.pi * STEP / NUM_STEPS) + 1.0) / 2.0
  np.testing.assert_allclose(out.metrics['momentum'], tau, rtol=1e-6)
  target = out.extra['target']['params']
  assert set(target) == {'encoder', 'projector'}
  for new, old, online in zip(*(jax.tree_util.tree_leaves(t) for t in (
      target, extra['target']['params'], common.target_subtree(params)))):
    np.testing.assert_allclose(new, tau * old + (1.0 - tau) * online, rtol=1e-5, atol=1e-7)

  model = common.encoder_projector(config, predictor_hidden_dim=predictor_hidden_dim)

  @jax.jit
  def reference_outputs(params, target, views):
    outputs = []
    for view in views:
      (_, z, p), _ = common.apply_train(model, params, batch_stats, view)
      (_, t), _ = common.apply_train(model, target, extra['target']['batch_stats'], view,
                                     method=common.EncoderProjector.project)
      outputs.append((z, z if p is None else p, t))
    return outputs

  (z1, p1, t1), (z2, p2, t2) = reference_outputs(params, target, batch.views)
  np.testing.assert_allclose(value, _naive_byol(p1, t2) + _naive_byol(p2, t1), rtol=1e-5)
  # The test tells the other pairing (each view against its own target) apart.
  assert abs(_naive_byol(p1, t1) + _naive_byol(p2, t2) - float(value)) > 1e-4
  np.testing.assert_allclose(out.embeddings[0], z1, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out.embeddings[1], z2, rtol=1e-5, atol=1e-6)
  assert set(out.extra) == {'target'}


def test_target_gets_no_gradient_and_online_heads_do():
  method, params, batch_stats, extra, batch = _setup(_config())

  def loss_of(params, target_params):
    target = {**extra['target'], 'params': target_params}
    return method.loss(params, batch_stats, {'target': target}, batch, jnp.int32(STEP),
                       jax.random.key(2))[0]

  grad_online, grad_target = jax.jit(jax.grad(loss_of, argnums=(0, 1)))(
      params, extra['target']['params'])
  for leaf in jax.tree_util.tree_leaves(grad_target):
    np.testing.assert_array_equal(leaf, 0.0)
  for head in ('encoder', 'projector', 'predictor'):
    norm = sum(float(jnp.sum(g**2)) for g in jax.tree_util.tree_leaves(grad_online[head]))
    assert norm > 0.0, head


@pytest.mark.parametrize('field,value,match', [
    ('momentum', 1.5, r'config\.byol\.momentum=1\.5 must be in \[0, 1\]'),
    ('momentum_schedule', 'linear', r"config\.byol\.momentum_schedule='linear' is unknown"),
    ('predictor_hidden_dim', -1, r'config\.byol\.predictor_hidden_dim=-1 must be >= 0'),
])
def test_bad_config_names_the_field(field, value, match):
  with pytest.raises(ConfigError, match=match):
    byol.create(_config(**{field: value}), INFO)
