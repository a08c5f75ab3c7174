"""Local Aggregation: background / close neighbour sets on a constructed bank, the loss and
its gradients against a NumPy reference, 8 sharded devices vs 1, the instance-recognition
warm-up, the epoch hook's k-means over the bank, bank updates, config errors and a short
digits run."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jssl.config import ConfigError
from jssl.config import load_config
from jssl.methods import Batch
from jssl.methods import TrainInfo
from jssl.methods import common
from jssl.methods import kmeans as kmeans_lib
from jssl.methods import local_aggregation as la
from tiny import loop_steps, tiny_config

BATCH, NUM_EXAMPLES, DIM, K_BACK, TAU = 8, 40, 6, 10, 0.5
INFO = TrainInfo(num_examples=NUM_EXAMPLES, num_classes=10, image_channels=1, num_steps=10)


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_neighbour_sets_on_a_constructed_bank():
  # Eight unit rows at angles 0, 10, 20, ..., 70 degrees; the query points at 25 degrees,
  # so its 4 most similar rows are 2, 3, 1, 4 (20, 30, 10, 40 degrees).
  angles = np.deg2rad(np.arange(8) * 10.0)
  bank = jnp.asarray(np.stack([np.cos(angles), np.sin(angles)], 1), jnp.float32)
  query = jnp.asarray([[math.cos(math.radians(25)), math.sin(math.radians(25))]]) * 3.0
  _, neighbours = jax.lax.top_k(query @ bank.T, 4)
  assert sorted(np.asarray(neighbours)[0].tolist()) == [1, 2, 3, 4]
  # Example 6 is the query's own example. Clustering 0 puts it with rows 2 and 7, clustering 1
  # with row 4: C = {2, 4, 6, 7}, so C and B = {2, 4}.
  labels = jnp.asarray([[0, 1, 5, 1, 2, 3, 5, 5],
                        [0, 1, 2, 3, 9, 5, 9, 7]], jnp.int32)
  mask = la.close_neighbour_mask(jnp.asarray([6]), neighbours, labels)
  close = sorted(int(j) for j, m in zip(np.asarray(neighbours)[0], np.asarray(mask)[0]) if m)
  assert close == [2, 4]
  value, metrics = la.local_aggregation_loss(query, bank, jnp.asarray([6]), labels,
                                             num_background=4, temperature=0.1)
  sims = np.asarray(_unit(query) @ np.asarray(bank, np.float64).T)[0] / 0.1
  want = -math.log(np.exp(sims[[2, 4]]).sum() / np.exp(sims[[1, 2, 3, 4]]).sum() + 1e-7)
  np.testing.assert_allclose(value, want, rtol=1e-5)
  np.testing.assert_allclose(metrics['close_neighbours'], 2.0)


def _problem(seed=0):
  rng = np.random.default_rng(seed)
  bank = _unit(rng.normal(size=(NUM_EXAMPLES, DIM))).astype(np.float32)
  v = rng.normal(size=(BATCH, DIM)).astype(np.float32)
  index = rng.permutation(NUM_EXAMPLES)[:BATCH].astype(np.int32)
  labels = rng.integers(0, 6, size=(3, NUM_EXAMPLES)).astype(np.int32)
  # Example index[0] gets a cluster of its own in every clustering: only itself is close, and
  # it is not among its background neighbours unless v_0 is near its bank row. Push v_0 away
  # from it so that C and B is empty: the example adds -log(1e-7) and no gradient.
  labels[:, index[0]] = 100 + np.arange(3)
  v[0] = -3.0 * bank[index[0]] + 0.1 * v[0]
  return jnp.asarray(v), jnp.asarray(bank), jnp.asarray(index), jnp.asarray(labels)


def _naive_loss(v, bank, index, labels, k=K_BACK, tau=TAU):
  v, bank = _unit(v), np.asarray(bank, np.float64)
  labels = np.asarray(labels)
  total = 0.0
  for b, i in enumerate(np.asarray(index)):
    sims = bank @ v[b]
    background = np.argsort(-sims)[:k]
    close = [j for j in background if any(labels[m, j] == labels[m, i]
                                          for m in range(labels.shape[0]))]
    p = np.exp(sims / tau)
    total -= math.log(p[close].sum() / p[background].sum() + 1e-7)
  return total / len(v)


def _la(v, bank, index, labels):
  return la.local_aggregation_loss(v, bank, index, labels, num_background=K_BACK,
                                   temperature=TAU)[0]


def test_loss_and_gradients_match_numpy_reference():
  v, bank, index, labels = _problem()
  value_and_grad = jax.jit(jax.value_and_grad(_la, argnums=(0, 1)))
  value, (grad_v, grad_bank) = value_and_grad(v, bank, index, labels)
  np.testing.assert_allclose(value, _naive_loss(v, bank, index, labels), rtol=1e-5)
  np.testing.assert_array_equal(grad_bank, 0.0)  # the bank is state, never trained
  np.testing.assert_array_equal(grad_v[0], 0.0)  # the example with no close neighbour
  # Central differences of the reference (the neighbour sets are locally constant).
  eps, v64 = 1e-4, np.asarray(v, np.float64)
  numeric = np.zeros_like(v64)
  for b in range(BATCH):
    for d in range(DIM):
      plus, minus = v64.copy(), v64.copy()
      plus[b, d] += eps
      minus[b, d] -= eps
      numeric[b, d] = (_naive_loss(plus, bank, index, labels) -
                       _naive_loss(minus, bank, index, labels)) / (2 * eps)
  np.testing.assert_allclose(grad_v, numeric, rtol=2e-3, atol=2e-4)
  assert np.abs(numeric[1:]).max() > 1e-3  # the other examples do get gradients

  # Sharded over 8 devices along the batch: same loss and gradients.
  mesh = Mesh(np.asarray(jax.devices()), ('data',))
  shard = NamedSharding(mesh, P('data'))
  value8, (grad8, _) = value_and_grad(jax.device_put(v, shard), bank,
                                      jax.device_put(index, shard), labels)
  np.testing.assert_allclose(value8, value, rtol=1e-6)
  np.testing.assert_allclose(grad8, grad_v, rtol=1e-5, atol=1e-7)


def test_instance_loss_is_softmax_over_the_whole_bank():
  v, bank, index, _ = _problem(1)
  got = la.instance_loss(v, bank, index, temperature=TAU)
  logits = _unit(v) @ np.asarray(bank, np.float64).T / TAU
  want = np.mean([np.log(np.exp(row).sum()) - row[i] for row, i in zip(logits, np.asarray(index))])
  np.testing.assert_allclose(got, want, rtol=1e-5)


def _config(**overrides):
  config = tiny_config('local_aggregation', projection_dim=DIM, image_size=8)
  config.local_aggregation.background_neighbours = K_BACK
  config.local_aggregation.num_clusters = 5
  config.local_aggregation.num_kmeans = 3
  config.local_aggregation.kmeans_iters = 4
  config.local_aggregation.temperature = TAU
  config.local_aggregation.instance_warmup_epochs = 1
  for key, value in overrides.items():
    config.local_aggregation[key] = value
  return config


def test_method_warmup_then_aggregation_bank_update_and_epoch_hook():
  config = _config()
  method = la.create(config, INFO)
  view = jax.random.uniform(jax.random.key(0), (BATCH, 8, 8, 1))
  params, batch_stats, extra = jax.jit(method.init)(jax.random.key(1), view)
  assert extra['bank'].shape == (NUM_EXAMPLES, DIM)
  np.testing.assert_array_equal(extra['cluster_labels'], np.tile(np.arange(NUM_EXAMPLES), (3, 1)))
  batch = Batch(views=(view,), label=jnp.zeros(BATCH, jnp.int32),
                index=jnp.asarray([3, 0, 17, 39, 8, 22, 5, 30]))
  model = common.encoder_projector(config)
  z = jax.jit(lambda p, s, x: common.apply_train(model, p, s, x)[0][1])(params, batch_stats,
                                                                       view)

  hook = jax.jit(method.epoch_start)
  opt_state = {'mu': jnp.ones(3)}
  # Epoch 0 is the warm-up: no clustering, the loss is the softmax over the whole bank.
  # It clusters the bank, so the loop never encodes the training split for it.
  assert not any(method.epoch_features(e) for e in range(3))
  p0, o0, extra0 = hook(params, opt_state, extra, None, jnp.int32(0), jax.random.key(2))
  assert p0 is not None and o0['mu'].shape == (3,)
  np.testing.assert_array_equal(extra0['cluster_labels'], extra['cluster_labels'])
  assert int(extra0['epoch']) == 0

  def loss_and_bank_grad(extra):
    def f(params, bank):
      return method.loss(params, batch_stats, {**extra, 'bank': bank}, batch, 0, None)
    return jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(params, extra['bank'])

  loss_and_bank_grad = jax.jit(loss_and_bank_grad)
  (value, out), (_, grad_bank) = loss_and_bank_grad(extra0)
  np.testing.assert_allclose(value, la.instance_loss(z, extra0['bank'], batch.index,
                                                     temperature=TAU), rtol=1e-5)
  np.testing.assert_array_equal(grad_bank, 0.0)
  assert float(out.metrics['instance_phase']) == 1.0
  # Bank rows of the batch move halfway (momentum 0.5) towards the unit embeddings.
  old, new = np.asarray(extra0['bank']), np.asarray(out.extra['bank'])
  rows = np.asarray(batch.index)
  np.testing.assert_allclose(new[rows], _unit(0.5 * old[rows] + 0.5 * _unit(z)), atol=1e-5)
  others = np.setdiff1d(np.arange(NUM_EXAMPLES), rows)
  np.testing.assert_array_equal(new[others], old[others])

  # Epoch 1: three k-means runs over the bank, with keys split from the hook's key.
  rng = jax.random.key(3)
  _, _, extra1 = hook(params, opt_state, out.extra, jnp.zeros((NUM_EXAMPLES, 8)),
                      jnp.int32(1), rng)
  assert int(extra1['epoch']) == 1
  reference = jax.jit(functools.partial(kmeans_lib.kmeans, num_clusters=5, num_iters=4))
  for r, key in enumerate(jax.random.split(rng, 3)):
    want = reference(key, out.extra['bank'])
    np.testing.assert_array_equal(extra1['cluster_labels'][r], want.assignments)
  assert not np.array_equal(extra1['cluster_labels'][0], extra1['cluster_labels'][1])
  (value, out1), (_, grad_bank) = loss_and_bank_grad(extra1)
  want = la.local_aggregation_loss(z, extra1['bank'], batch.index, extra1['cluster_labels'],
                                   num_background=K_BACK, temperature=TAU)[0]
  np.testing.assert_allclose(value, want, rtol=1e-5)
  np.testing.assert_array_equal(grad_bank, 0.0)
  assert float(out1.metrics['instance_phase']) == 0.0
  assert float(out1.metrics['close_neighbours']) >= 1.0


@pytest.mark.parametrize('field,value,match', [
    ('temperature', 0.0, r'config\.local_aggregation\.temperature=0\.0 must be positive'),
    ('background_neighbours', 0,
     r'config\.local_aggregation\.background_neighbours=0 must be >= 1'),
    ('num_clusters', 1, r'config\.local_aggregation\.num_clusters=1 must be at least 2'),
    ('num_kmeans', 0, r'config\.local_aggregation\.num_kmeans=0 must be >= 1'),
    ('kmeans_iters', 0, r'config\.local_aggregation\.kmeans_iters=0 must be >= 1'),
    ('kmeans_init', 'x', r"config\.local_aggregation\.kmeans_init='x' is unknown"),
    ('momentum', 1.0, r'config\.local_aggregation\.momentum=1\.0 must be in \[0, 1\)'),
    ('instance_warmup_epochs', -1,
     r'config\.local_aggregation\.instance_warmup_epochs=-1 must be >= 0'),
])
def test_bad_config_names_the_field(field, value, match):
  with pytest.raises(ConfigError, match=match):
    la.create(_config(**{field: value}), INFO)


def test_three_steps_on_digits(tmp_path):
  config = load_config('experiments/configs/local_aggregation.py')
  config.num_steps = 3
  config.batch_size = 16
  config.model.widths = (4, 8)
  config.local_aggregation.instance_warmup_epochs = 0  # the hook clusters the bank at step 0
  config.local_aggregation.num_kmeans = 2
  records = loop_steps(config, str(tmp_path), 3)
  assert all(math.isfinite(r['loss']) for r in records)
  assert all(r['instance_phase'] == 0.0 for r in records)
  assert all(r['close_neighbours'] >= 1.0 for r in records)
