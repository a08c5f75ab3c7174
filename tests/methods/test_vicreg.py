"""VICReg: the loss against a NumPy reference on the expander outputs of the two views (each
view its own BatchNorm call), the logged terms, config errors and a short digits run."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.config import ConfigError
from jssl.methods import Batch
from jssl.methods import TrainInfo
from jssl.methods import common
from jssl.methods import vicreg
from tiny import BATCH, tiny_config

INFO = TrainInfo(num_examples=64, num_classes=10, image_channels=1, num_steps=10)


def _config(**weights):
  return tiny_config('vicreg', projection_dim=6, **weights)


def _naive_terms(z1, z2, eps=1e-4):
  z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
  n, d = z1.shape
  invariance = np.mean((z1 - z2) ** 2)
  variance = covariance = 0.0
  for z in (z1, z2):
    variance += np.mean(np.maximum(0.0, 1.0 - np.sqrt(z.var(0, ddof=1) + eps)))
    centred = z - z.mean(0)
    for i in range(d):
      for j in range(d):
        if i != j:
          covariance += (np.dot(centred[:, i], centred[:, j]) / (n - 1)) ** 2 / d
  return {'invariance': invariance, 'variance': variance, 'covariance': covariance}


def test_loss_matches_reference_on_per_view_expander_outputs():
  config = _config(sim_weight=2.0, var_weight=3.0, cov_weight=5.0)
  method = vicreg.create(config, INFO)
  views = tuple(jax.random.uniform(k, (BATCH, 8, 8, 1)) for k in jax.random.split(
      jax.random.key(0), 2))
  params, batch_stats, extra = jax.jit(method.init)(jax.random.key(1), views[0])
  batch = Batch(views=views, label=jnp.zeros(BATCH, jnp.int32), index=jnp.arange(BATCH))
  model = common.encoder_projector(config)

  @jax.jit
  def run(params):
    value, out = method.loss(params, batch_stats, extra, batch, jnp.int32(0), jax.random.key(2))
    z = [common.apply_train(model, params, batch_stats, v)[0][1] for v in views]
    return value, out, z

  value, out, (z1, z2) = run(params)
  assert set(params['projector']) == {'dense_0', 'bn_0', 'dense_1', 'bn_1', 'dense_out'}
  np.testing.assert_allclose(out.embeddings[0], z1, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out.embeddings[1], z2, rtol=1e-5, atol=1e-6)
  terms = _naive_terms(z1, z2)
  for name, want in terms.items():
    np.testing.assert_allclose(out.metrics[name], want, rtol=1e-4, err_msg=name)
    assert want > 1e-3, name  # every term is active on this case
  np.testing.assert_allclose(
      value, 2 * terms['invariance'] + 3 * terms['variance'] + 5 * terms['covariance'],
      rtol=1e-4)
  assert out.extra == {}


@pytest.mark.parametrize('field', ['sim_weight', 'var_weight', 'cov_weight'])
def test_bad_config_names_the_field(field):
  with pytest.raises(ConfigError, match=rf'config\.vicreg\.{field}=-1\.0 must be >= 0'):
    vicreg.create(_config(**{field: -1.0}), INFO)
