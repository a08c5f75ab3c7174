"""NNCLR: neighbour lookup, the loss against a NumPy reference (direction, support set before
the push), the support-set update, stop-gradients, config errors and a short digits run."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.config import ConfigError
from jssl.methods import TrainInfo
from jssl.methods import common
from jssl.methods import nnclr
from tiny import BATCH, tiny_config, initialise, unit


def _config(**overrides):
  return tiny_config('nnclr', **{'support_size': 2 * BATCH, 'predictor_hidden_dim': 16,
                                 **overrides})


INFO = TrainInfo(num_examples=64, num_classes=10, image_channels=1, num_steps=10)


def _setup(config):
  method = nnclr.create(config, INFO)
  # Pointer 3: the push wraps around the end of the support queue.
  return (method, *initialise(method, [8, 8], queue_pointer=jnp.asarray(3, jnp.int32)))


def _naive_batch_info_nce(query, key, temperature):
  q, k = unit(query), unit(key)
  total = 0.0
  for i in range(len(q)):
    logits = np.array([q[i] @ k[j] for j in range(len(k))]) / temperature
    total -= logits[i] - np.log(np.sum(np.exp(logits)))
  return total / len(q)


def _naive_nn(z, support):
  z, support = unit(z), unit(support)
  return support[[int(np.argmax([zi @ s for s in support])) for zi in z]]


def test_nearest_neighbour_hand_built():
  support = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, -0.8]])
  query = jnp.array([[5.0, 0.2], [0.1, -0.1], [-0.3, 2.0], [-4.0, -1.0]])
  expected = support[jnp.array([0, 3, 1, 2])]
  np.testing.assert_array_equal(nnclr.nearest_neighbour(query, support), expected)
  grad = jax.grad(lambda s: jnp.sum(nnclr.nearest_neighbour(query, s)))(support)
  np.testing.assert_array_equal(grad, 0.0)


def test_loss_matches_reference_and_pushes_view_one():
  config = _config(temperature=0.3)
  method, params, batch_stats, extra, batch = _setup(config)
  value, out = jax.jit(method.loss)(params, batch_stats, extra, batch, jnp.int32(0),
                                    jax.random.key(2))

  model = common.encoder_projector(config, predictor_hidden_dim=16)

  @jax.jit
  def heads(params, batch_stats, views):
    (_, z1, p1), stats = common.apply_train(model, params, batch_stats, views[0])
    (_, z2, p2), _ = common.apply_train(model, params, stats, views[1])
    return z1, p1, z2, p2

  z1, p1, z2, p2 = heads(params, batch_stats, batch.views)
  queue = np.asarray(extra['queue'])
  nn1, nn2 = _naive_nn(z1, queue), _naive_nn(z2, queue)
  expected = 0.5 * (_naive_batch_info_nce(nn1, p2, 0.3) + _naive_batch_info_nce(nn2, p1, 0.3))
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  # The test can tell the other pairing and a search after the push apart.
  swapped = 0.5 * (_naive_batch_info_nce(nn1, p1, 0.3) + _naive_batch_info_nce(nn2, p2, 0.3))
  assert abs(swapped - expected) > 1e-3
  pushed = np.asarray(out.extra['queue'])
  after = 0.5 * (_naive_batch_info_nce(_naive_nn(z1, pushed), p2, 0.3)
                 + _naive_batch_info_nce(_naive_nn(z2, pushed), p1, 0.3))
  assert abs(after - expected) > 1e-3
  np.testing.assert_allclose(out.metrics['nn_cosine'],
                             np.mean(np.sum(unit(z1) * nn1, -1)), rtol=1e-5)

  # Rows 3..10 (pointer 3, batch 8) now hold the unit z1 of view 1; the others are unchanged.
  rows = np.arange(3, 3 + BATCH)
  np.testing.assert_allclose(pushed[rows], unit(z1), atol=1e-6)
  others = np.setdiff1d(np.arange(len(queue)), rows)
  np.testing.assert_array_equal(pushed[others], queue[others])
  assert int(out.extra['queue_pointer']) == 3 + BATCH
  assert set(out.extra) == {'queue', 'queue_pointer'}


def test_support_set_gets_no_gradient_and_heads_do():
  method, params, batch_stats, extra, batch = _setup(_config())

  def loss_of(params, queue):
    return method.loss(params, batch_stats, {**extra, 'queue': queue}, batch, jnp.int32(0),
                       jax.random.key(2))[0]

  grad_params, grad_queue = jax.jit(jax.grad(loss_of, argnums=(0, 1)))(params, extra['queue'])
  np.testing.assert_array_equal(grad_queue, 0.0)
  for head in ('encoder', 'projector', 'predictor'):
    norm = sum(float(jnp.sum(g**2)) for g in jax.tree_util.tree_leaves(grad_params[head]))
    assert norm > 0.0, head


@pytest.mark.parametrize('field,value,match', [
    ('support_size', 12, r'config\.nnclr\.support_size=12 .* --config\.nnclr\.support_size=8'),
    ('support_size', 4, r'config\.nnclr\.support_size=4 must be a positive multiple'),
    ('temperature', 0.0, r'config\.nnclr\.temperature=0\.0 must be positive'),
    ('predictor_hidden_dim', 0, r'config\.nnclr\.predictor_hidden_dim=0'),
])
def test_bad_config_names_the_field(field, value, match):
  with pytest.raises(ConfigError, match=match):
    nnclr.create(_config(**{field: value}), INFO)
