"""SimSiam: the loss against a NumPy reference, the heads the paper describes, the stop-gradient
(and its ablation), config errors and a short digits run."""


import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jssl.config import ConfigError
from jssl.methods import TrainInfo
from jssl.methods import common
from jssl.methods import simsiam
from tiny import tiny_config, initialise, unit


def _config(**overrides):
  return tiny_config('simsiam', projection_dim=16, **{'predictor_hidden_dim': 8, **overrides})


INFO = TrainInfo(num_examples=64, num_classes=10, image_channels=1, num_steps=10)


def _setup(config):
  method = simsiam.create(config, INFO)
  return (method, *initialise(method, [8, 8]))


def _naive_d(p, z):
  return float(-np.mean(np.sum(unit(p) * unit(z), -1)))


def _jnpunit(x):
  return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def _heads(config, params, batch_stats, views):
  model = simsiam.build_model(config)
  outputs = []
  for view in views:
    (_, z, p), _ = common.apply_train(model, params, batch_stats, view)
    outputs.append((z, p))
  return outputs


def test_heads_follow_the_paper_and_loss_matches_reference():
  config = _config()
  method, params, batch_stats, extra, batch = _setup(config)
  # Projector: BN after every layer, the output included; predictor: a bottleneck whose
  # output has no BN.
  assert set(params['projector']) == {'dense_0', 'bn_0', 'dense_out', 'bn_out'}
  assert set(params['predictor']) == {'dense_0', 'bn_0', 'dense_out'}
  assert params['predictor']['dense_0']['kernel'].shape == (16, 8)
  assert params['predictor']['dense_out']['kernel'].shape == (8, 16)
  value, out = jax.jit(method.loss)(params, batch_stats, extra, batch, jnp.int32(0),
                                    jax.random.key(2))
  (z1, p1), (z2, p2) = jax.jit(lambda p, v: _heads(config, p, batch_stats, v))(params,
                                                                               batch.views)
  np.testing.assert_allclose(value, 0.5 * _naive_d(p1, z2) + 0.5 * _naive_d(p2, z1), rtol=1e-5)
  # The test tells the other pairing (each view against itself) apart.
  assert abs(0.5 * _naive_d(p1, z1) + 0.5 * _naive_d(p2, z2) - float(value)) > 1e-4
  np.testing.assert_allclose(out.embeddings[0], z1, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out.embeddings[1], z2, rtol=1e-5, atol=1e-6)
  assert out.extra == {}


@pytest.mark.parametrize('stop_gradient', [True, False])
def test_gradient_is_that_of_a_constant_target_only_with_stop_gradient(stop_gradient):
  """With the stop-gradient, d loss / d params equals the gradient of D(p1, c2)/2 + D(p2, c1)/2
  with c = z held constant; without it, the gradient also flows through z (and differs)."""
  config = _config(stop_gradient=stop_gradient)
  method, params, batch_stats, extra, batch = _setup(config)

  def method_loss(params):
    return method.loss(params, batch_stats, extra, batch, jnp.int32(0), jax.random.key(2))

  def constant_target_loss(params, c1, c2):
    (_, p1), (_, p2) = _heads(config, params, batch_stats, batch.views)
    return 0.5 * (-jnp.mean(jnp.sum(_jnpunit(p1) * _jnpunit(c2), -1))
                  - jnp.mean(jnp.sum(_jnpunit(p2) * _jnpunit(c1), -1)))

  @jax.jit
  def gradients(params):
    grad_method, out = jax.grad(method_loss, has_aux=True)(params)
    # z1, z2 passed as arguments that are not differentiated: constants for this gradient.
    grad_constant = jax.grad(constant_target_loss)(params, *out.embeddings)
    return grad_method, grad_constant

  grad_method, grad_constant = gradients(params)
  differences = [float(jnp.max(jnp.abs(a - b))) for a, b in zip(
      jax.tree_util.tree_leaves(grad_method), jax.tree_util.tree_leaves(grad_constant))]
  scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree_util.tree_leaves(grad_constant))
  if stop_gradient:
    assert max(differences) <= 1e-5 * scale + 1e-7, max(differences)
  else:
    assert max(differences) > 1e-2 * scale
  # With the stop-gradient the projector still learns, through the predictor's input z.
  assert float(jnp.sum(grad_method['projector']['bn_out']['scale'] ** 2)) > 0.0


@pytest.mark.parametrize('field,value,match', [
    ('predictor_hidden_dim', 0, r'config\.simsiam\.predictor_hidden_dim=0 must be positive'),
    ('stop_gradient', 1, r'config\.simsiam\.stop_gradient=1 must be True or False'),
])
def test_bad_config_names_the_field(field, value, match):
  config = _config()
  # A new section: the loaded one is typed and would refuse an int for a bool.
  config.simsiam = ml_collections.ConfigDict({**config.simsiam.to_dict(), field: value})
  with pytest.raises(ConfigError, match=match):
    simsiam.create(config, INFO)
