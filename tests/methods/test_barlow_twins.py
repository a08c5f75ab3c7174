"""Barlow Twins: the loss against a NumPy reference on the projections of the two views
(each view its own BatchNorm call), the logged terms, config errors and a short digits run."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.config import ConfigError
from jssl.methods import Batch
from jssl.methods import TrainInfo
from jssl.methods import barlow_twins
from jssl.methods import common
from tiny import BATCH, tiny_config

INFO = TrainInfo(num_examples=64, num_classes=10, image_channels=1, num_steps=10)


def _config(lambd=0.05):
  return tiny_config('barlow_twins', projection_dim=6, lambd=lambd)


def _naive_terms(z1, z2, eps=1e-5):
  """Σ_i (1 - c_ii)², Σ_{i≠j} c_ij² with c the correlation of batch-standardised columns."""
  z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
  n, d = z1.shape
  z1 = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + eps)
  z2 = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + eps)
  c = np.array([[np.dot(z1[:, i], z2[:, j]) / n for j in range(d)] for i in range(d)])
  on = sum((1 - c[i, i]) ** 2 for i in range(d))
  off = sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j)
  return on, off


def test_loss_matches_reference_on_per_view_projections():
  config = _config(lambd=0.05)
  method = barlow_twins.create(config, INFO)
  views = tuple(jax.random.uniform(k, (BATCH, 8, 8, 1)) for k in jax.random.split(
      jax.random.key(0), 2))
  params, batch_stats, extra = jax.jit(method.init)(jax.random.key(1), views[0])
  assert extra == {}
  batch = Batch(views=views, label=jnp.zeros(BATCH, jnp.int32), index=jnp.arange(BATCH))
  model = common.encoder_projector(config)

  @jax.jit
  def run(params):
    value, out = method.loss(params, batch_stats, extra, batch, jnp.int32(0), jax.random.key(2))
    # Reference projections: one BatchNorm call per view.
    z = [common.apply_train(model, params, batch_stats, v)[0][1] for v in views]
    return value, out, z

  value, out, (z1, z2) = run(params)
  assert set(params['projector']) == {'dense_0', 'bn_0', 'dense_1', 'bn_1', 'dense_out'}
  np.testing.assert_allclose(out.embeddings[0], z1, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out.embeddings[1], z2, rtol=1e-5, atol=1e-6)
  on, off = _naive_terms(z1, z2)
  np.testing.assert_allclose(value, on + 0.05 * off, rtol=1e-4)
  np.testing.assert_allclose(out.metrics['invariance'], on, rtol=1e-4)
  np.testing.assert_allclose(out.metrics['redundancy'], off, rtol=1e-4)
  assert off > 1e-2 and on > 1e-2  # both terms matter on this case
  assert out.extra == {}


def test_bad_config_names_the_field():
  with pytest.raises(ConfigError, match=r'config\.barlow_twins\.lambd=-0\.1 must be >= 0'):
    barlow_twins.create(_config(lambd=-0.1), INFO)
