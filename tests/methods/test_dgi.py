"""Deep Graph Infomax on the toy graph: the corruption, the readout and discriminator, the
loss through the shared loop on 1 and 8 devices, `represent`, every config variant traced,
and bad configs."""

import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl import losses
from jssl.config import ConfigError
from jssl.config import GRAPH_NUM_NODES
from jssl.config import load_config
from jssl.data.graph import load_graph_dataset
from jssl.methods import TrainInfo
from jssl.methods import dgi
from jssl.train.loop import Run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, 'experiments', 'configs', 'dgi.py')
VARIANTS = ('wordnet_nouns', 'polblogs', 'football', 'toy')
WIDTH = 16


def _toy_config(**dgi_fields):
  config = load_config(f'{CONFIG}:toy')
  config.dgi.hidden_dims = (WIDTH,)
  config.num_steps = 20
  config.eval.linear_steps = 10
  config.eval.linear_l2_grid = (1e-4,)
  # A rate of 1e-2 (not the paper's 1e-3) so that a few steps move the loss visibly.
  config.optimizer.base_learning_rate = 1e-2 * 256 / config.batch_size
  config.dgi.update(dgi_fields)
  return config


def _step_key(state, step):
  """The key `jssl.train.step` hands to `prepare` at `step`."""
  rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), step)
  return jax.random.split(rng)[0]


def _embed(run, params, features):
  constants = run.constants
  return run.method.represent(params, {}, {'node': jnp.arange(features.shape[0])},
                              {**constants, 'node_features': features})


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """A 1-device and an 8-device run of the toy config, three steps each on the same batches,
  then the 1-device run trained on (the parameters of step 0 kept for the checks)."""
  config = _toy_config()
  workdir = str(tmp_path_factory.mktemp('dgi'))
  one = Run(config, os.path.join(workdir, 'one'), devices=jax.devices()[:1])
  eight = Run(config, os.path.join(workdir, 'eight'))
  initial = jax.device_get(one.state)
  losses_one, losses_eight = [], []
  for _ in range(3):
    batch = next(one.iterator)
    next(eight.iterator)
    losses_one.append(float(one.advance(batch)['loss']))
    losses_eight.append(float(eight.advance(batch)['loss']))
  eight.iterator.close()
  for _ in range(config.num_steps - 3):
    losses_one.append(float(one.advance(next(one.iterator))['loss']))
  one.iterator.close()
  return {'one': one, 'eight': eight, 'initial': initial, 'losses_one': losses_one,
          'losses_eight': losses_eight, 'config': config}


def test_corruption_is_a_fresh_row_permutation_every_step(runs):
  run, initial = runs['one'], runs['initial']
  batch = run.device_batch(run.dataset.train.get_batch(np.arange(run.config.batch_size)))
  features = np.asarray(run.constants['node_features'])
  n = features.shape[0]
  permutations = []
  for step in (0, 1):
    inputs = run.method.prepare(_step_key(initial, step), batch, run.constants)
    permutation = np.asarray(inputs['permutation'])
    assert sorted(permutation.tolist()) == list(range(n))  # every row once
    np.testing.assert_array_equal(np.asarray(inputs['corrupted_features']),
                                  features[permutation])
    np.testing.assert_array_equal(np.asarray(inputs['node_features']), features)
    np.testing.assert_array_equal(np.asarray(inputs['senders']),
                                  np.asarray(run.constants['senders']))  # edges untouched
    again = run.method.prepare(_step_key(initial, step), batch, run.constants)
    np.testing.assert_array_equal(np.asarray(again['permutation']), permutation)
    permutations.append(permutation)
  assert np.mean(permutations[0] != permutations[1]) > 0.5  # a new one at each step
  assert np.mean(permutations[0] != np.arange(n)) > 0.5  # not the identity


def test_readout_discriminator_and_loss_by_hand(runs):
  run, initial = runs['one'], runs['initial']
  params = initial.params
  feature_dim = run.dataset.feature_dim
  assert params['encoder']['gcn_0']['dense']['kernel'].shape == (feature_dim, WIDTH)
  assert params['discriminator']['kernel'].shape == (WIDTH, WIDTH)
  assert params['discriminator']['bias'].shape == ()
  assert run.method.features_dim == WIDTH and not run.method.online_probe

  h = np.asarray(_embed(run, params, run.constants['node_features']), np.float64)
  summary = np.asarray(dgi.readout(jnp.asarray(h, jnp.float32)))
  assert summary.shape == (WIDTH,)
  np.testing.assert_allclose(summary, 1 / (1 + np.exp(-h.mean(axis=0))), rtol=1e-5)
  scores = np.asarray(dgi.discriminate(params['discriminator'], jnp.asarray(h, jnp.float32),
                                       jnp.asarray(summary)))
  kernel = np.asarray(params['discriminator']['kernel'], np.float64)
  assert scores.shape == (h.shape[0],)
  want = np.array([row @ kernel @ summary for row in h]) + float(params['discriminator']['bias'])
  np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-5)

  # The first step's loss is the paper's objective over every node of the graph and of the
  # corruption the step drew (its key), computed here from the pieces.
  batch = run.device_batch(run.dataset.train.get_batch(np.arange(run.config.batch_size)))
  inputs = run.method.prepare(_step_key(initial, 0), batch, run.constants)
  fake = _embed(run, params, inputs['corrupted_features'])
  neg = dgi.discriminate(params['discriminator'], fake, jnp.asarray(summary))
  expected = losses.dgi(jnp.asarray(scores), neg)
  np.testing.assert_allclose(runs['losses_one'][0], float(expected), rtol=1e-5)
  value, out = run.method.loss(params, {}, {}, inputs, 0, jax.random.key(0))
  np.testing.assert_allclose(float(value), float(expected), rtol=1e-5)
  assert out.features is None and 0.0 <= float(out.metrics['discriminator_accuracy']) <= 1.0


def test_eight_devices_equal_one_and_the_loss_decreases(runs):
  np.testing.assert_allclose(runs['losses_eight'], runs['losses_one'][:3], rtol=1e-5,
                             atol=1e-5)
  trajectory = runs['losses_one']
  assert all(np.isfinite(trajectory))
  assert np.mean(trajectory[-5:]) < trajectory[0] - 0.05, trajectory


def test_represent_gives_rows_of_the_full_graph_embedding(runs):
  for run in (runs['one'], runs['eight']):
    state = run.state
    full = np.asarray(_embed(run, state.params, run.constants['node_features']))
    assert full.shape == (run.dataset.graph.num_nodes, WIDTH)
    nodes = np.array([5, 0, 63, 5, 17, 2, 40, 33], np.int32)
    features, _ = run.feature_fn(state.params, state.batch_stats, state.probe_params,
                                 run.device_batch({'node': nodes}), run.constants)
    np.testing.assert_allclose(np.asarray(features), full[nodes], rtol=1e-5, atol=1e-6)


def test_evaluation_probes_train_mask_nodes_without_the_online_probe(runs):
  results = runs['one'].evaluate()
  assert 'online_linear_top1' not in results
  for key in ('knn_top1', 'linear_top1'):
    assert 0.0 <= results[key] <= 1.0


def test_every_variant_steps_over_its_whole_graph_at_its_rate():
  """Each variant's batch is (nearly) every node of its graph and its peak rate the variant's.
  (Every variant is built on its graph and traced by tests/test_configs.py.)"""
  spec = importlib.util.spec_from_file_location('dgi_config', CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  for variant in VARIANTS:
    config = load_config(f'{CONFIG}:{variant}')
    num_nodes = GRAPH_NUM_NODES[variant]
    if variant != 'wordnet_nouns':  # (82,115 synsets: tests/data/test_graph.py)
      assert load_graph_dataset(variant).graph.num_nodes == num_nodes
    assert config.batch_size % 8 == 0 and num_nodes - 8 < config.batch_size <= num_nodes
    # The loop's peak rate (base x batch / 256) is the variant's (the paper's 1e-3 but WordNet).
    np.testing.assert_allclose(config.optimizer.base_learning_rate * config.batch_size / 256,
                               module.LEARNING_RATES[variant], rtol=1e-9)
    assert config.optimizer.name == 'adamw' and config.optimizer.weight_decay == 0.0


@pytest.mark.parametrize('fields,message', [
    ({'hidden_dims': ()}, 'config.dgi.hidden_dims'),
    ({'hidden_dims': (16, 0)}, 'config.dgi.hidden_dims'),
    ({'activation': 'tanh'}, 'config.dgi.activation'),
])
def test_bad_configs_name_the_field(fields, message, runs):
  config = _toy_config()
  for key, value in fields.items():
    config.dgi[key] = value
  info = TrainInfo(num_examples=64, num_classes=4, image_channels=0, num_steps=1,
                   dataset=runs['one'].dataset)
  with pytest.raises(ConfigError, match=message):
    dgi.create(config, info)


def test_an_image_dataset_is_refused():
  config = _toy_config()
  config.dataset.name = 'digits'
  info = TrainInfo(num_examples=64, num_classes=10, image_channels=1, num_steps=1)
  with pytest.raises(ConfigError, match='not a graph dataset'):
    dgi.create(config, info)
