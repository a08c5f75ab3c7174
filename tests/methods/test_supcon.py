"""SupCon: view labels, the loss against a NumPy reference, the special case use_labels=False
== SimCLR's NT-Xent on the same projections, config errors and a short digits run."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl import losses
from jssl.config import ConfigError
from jssl.methods import Batch, TrainInfo, common, supcon
from tiny import BATCH, tiny_config

INFO = TrainInfo(num_examples=64, num_classes=3, image_channels=1, num_steps=10)


def _config(**overrides):
  return tiny_config('supcon', **overrides)


def _batch(labels):
  keys = jax.random.split(jax.random.key(0), 2)
  views = tuple(jax.random.uniform(k, (BATCH, 8, 8, 1)) for k in keys)
  return Batch(views=views, label=jnp.asarray(labels, jnp.int32),
               index=jnp.arange(10, 10 + BATCH, dtype=jnp.int32))


def _projections(config, params, batch_stats, batch):
  """z1, z2 of the method's network in training mode, computed outside the method."""
  model = common.encoder_projector(config)

  @jax.jit
  def project(params, batch_stats, views):
    (_, z, _), _ = common.apply_train(model, params, batch_stats, common.interleave(views))
    return common.deinterleave(z, 2)

  return project(params, batch_stats, batch.views)


def _naive_supcon(z, labels, temperature):
  z = np.asarray(z, np.float64)
  z = z / np.linalg.norm(z, axis=-1, keepdims=True)
  total, anchors = 0.0, 0
  for i in range(len(z)):
    others = [a for a in range(len(z)) if a != i]
    log_denominator = np.log(sum(np.exp(z[i] @ z[a] / temperature) for a in others))
    positives = [p for p in others if labels[p] == labels[i]]
    if positives:
      total -= np.mean([z[i] @ z[p] / temperature - log_denominator for p in positives])
      anchors += 1
  return total / anchors


def test_view_labels():
  label, index = jnp.array([3, 1, 3]), jnp.array([7, 8, 9])
  np.testing.assert_array_equal(supcon.view_labels(label, index, use_labels=True),
                                [3, 1, 3, 3, 1, 3])
  np.testing.assert_array_equal(supcon.view_labels(label, index, use_labels=False),
                                [7, 8, 9, 7, 8, 9])


def test_loss_is_supcon_over_both_views_with_repeated_labels():
  config = _config()
  method = supcon.create(config, INFO)
  labels = [0, 1, 2, 0, 1, 2, 0, 0]
  batch = _batch(labels)
  params, batch_stats, extra = jax.jit(method.init)(jax.random.key(1), batch.views[0])
  value, out = jax.jit(method.loss)(params, batch_stats, extra, batch, 0, jax.random.key(2))
  z1, z2 = _projections(config, params, batch_stats, batch)
  expected = _naive_supcon(np.concatenate([z1, z2]), labels + labels, 0.1)
  np.testing.assert_allclose(value, expected, rtol=1e-4)
  # More positives than SimCLR's one per anchor: the two losses differ.
  assert abs(float(value) - float(losses.nt_xent(z1, z2, temperature=0.1))) > 1e-3
  assert out.features.shape == (BATCH, method.features_dim)
  assert out.extra == {}


def test_without_labels_equals_simclr_nt_xent():
  config = _config(use_labels=False)
  method = supcon.create(config, INFO)
  batch = _batch([0] * BATCH)  # labels that would all be positives if they were read
  params, batch_stats, extra = jax.jit(method.init)(jax.random.key(1), batch.views[0])
  value, _ = jax.jit(method.loss)(params, batch_stats, extra, batch, 0, jax.random.key(2))
  z1, z2 = _projections(config, params, batch_stats, batch)
  np.testing.assert_allclose(value, losses.nt_xent(z1, z2, temperature=0.1), rtol=1e-5)


@pytest.mark.parametrize('temperature', [0.0, -0.1])
def test_config_error_names_the_field(temperature):
  with pytest.raises(ConfigError, match='config.supcon.temperature'):
    supcon.create(_config(temperature=temperature), INFO)
