"""Graph autoencoders on the toy graph: the held-out edge split, the VGAE / GAE loss against a
dense NumPy GCN and loops, the link metrics against pairwise counts, training through the
loop, and bad configs. (1 vs 8 devices and the restore: tests/methods/test_all_methods.py.)"""

import itertools
import math
import os

import jax
import numpy as np
import pytest

from jssl.config import ConfigError
from jssl.config import load_config
from jssl.data import graph as graph_data
from jssl.eval.link_prediction import link_scores
from jssl.train.loop import Run
from jssl.train.step import prepare_inputs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, 'experiments', 'configs', 'gae.py')


def _config(**fields):
  config = load_config(f'{CONFIG}:toy')
  config.eval.linear_steps = 10
  config.eval.linear_l2_grid = (1e-4,)
  config.gae.update(fields)
  return config


def test_the_split_holds_out_both_directions_and_draws_true_non_edges():
  graph = graph_data.toy_graph().graph
  split = graph_data.link_split(graph, val_fraction=0.1, test_fraction=0.2, seed=3)
  n = graph.num_nodes
  edges = set(zip(graph.senders.tolist(), graph.receivers.tolist()))
  undirected = len(edges) // 2
  assert len(split.val_pos) == round(0.1 * undirected)
  assert len(split.test_pos) == round(0.2 * undirected)
  assert len(split.val_neg) == len(split.val_pos) and len(split.test_neg) == len(split.test_pos)
  held = {tuple(p) for p in np.concatenate([split.val_pos, split.test_pos]).tolist()}
  assert len(held) == len(split.val_pos) + len(split.test_pos)  # val and test disjoint
  kept = {(s, r) for s, r, keep in zip(graph.senders.tolist(), graph.receivers.tolist(),
                                       split.train_edge_mask.tolist()) if keep}
  for i, j in held:  # an edge of the graph, gone from training in both directions
    assert i < j and (i, j) in edges and (i, j) not in kept and (j, i) not in kept
  assert len(kept) == len(edges) - 2 * len(held)
  negatives = [tuple(p) for p in np.concatenate([split.val_neg, split.test_neg]).tolist()]
  assert len(set(negatives)) == len(negatives)  # distinct, none shared
  for i, j in negatives:
    assert i < j < n and (i, j) not in edges
  again = graph_data.link_split(graph, val_fraction=0.1, test_fraction=0.2, seed=3)
  np.testing.assert_array_equal(again.test_neg, split.test_neg)  # fixed by the seed
  other = graph_data.link_split(graph, val_fraction=0.1, test_fraction=0.2, seed=4)
  assert not np.array_equal(other.test_pos, split.test_pos)
  directed = graph._replace(senders=graph.senders[:1], receivers=graph.receivers[:1])
  with pytest.raises(ValueError, match='needs an undirected graph'):
    graph_data.link_split(directed)
  with pytest.raises(ValueError, match='sum below 1'):
    graph_data.link_split(graph, val_fraction=0.5, test_fraction=0.5)


def test_link_metrics_equal_pairwise_counts():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(12, 3))
  pos = np.asarray([[0, 1], [2, 3], [4, 5], [1, 7]])
  neg = np.asarray([[0, 2], [3, 9], [6, 8], [10, 11], [5, 11]])
  score = lambda p: float(z[p[0]] @ z[p[1]])
  pos_s, neg_s = [score(p) for p in pos], [score(p) for p in neg]
  auc = np.mean([1.0 if a > b else 0.5 if a == b else 0.0
                 for a, b in itertools.product(pos_s, neg_s)])
  ranked = sorted([(s, 1) for s in pos_s] + [(s, 0) for s in neg_s], reverse=True)
  hits, precisions = 0, []
  for rank, (_, label) in enumerate(ranked, 1):
    if label:
      hits += 1
      precisions.append(hits / rank)
  got = link_scores(z, pos, neg)
  np.testing.assert_allclose(got['auc'], auc, rtol=1e-12)
  np.testing.assert_allclose(got['ap'], np.mean(precisions), rtol=1e-12)
  with pytest.raises(ValueError, match='node ids must be in'):
    link_scores(z, np.asarray([[0, 12]]), neg)


def _dense_gcn(x, senders, receivers, keep, kernel, bias):
  """D^-1/2 (A + I) D^-1/2 x W + b over the kept edges, with matrices."""
  n = x.shape[0]
  adjacency = np.eye(n)
  for s, r, k in zip(senders, receivers, keep):
    adjacency[r, s] += k
  inv_sqrt = 1 / np.sqrt(adjacency.sum(1))
  return inv_sqrt[:, None] * adjacency * inv_sqrt[None, :] @ x @ kernel + bias


@pytest.mark.parametrize('variational', [True, False])
def test_loss_equals_a_dense_numpy_vgae(tmp_path, variational):
  run = Run(_config(variational=variational), str(tmp_path), devices=jax.devices()[:1])
  graph = run.dataset.graph
  split = graph_data.link_split(graph, val_fraction=0.05, test_fraction=0.1, seed=0)
  batch = run.device_batch(next(run.iterator))
  inputs = prepare_inputs(run.method, jax.random.key(3), batch, run.constants)
  rng = jax.random.key(5)
  value, out = run.method.loss(run.state.params, {}, {}, inputs, 0, rng)

  p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), run.state.params['encoder'])
  layer = lambda h, name: _dense_gcn(h, graph.senders, graph.receivers, split.train_edge_mask,
                                     p[name]['dense']['kernel'], p[name]['bias'])
  hidden = np.maximum(layer(graph.node_features.astype(np.float64), 'layer_0'), 0)
  mu = layer(hidden, 'mu')
  z = mu
  if variational:
    log_sigma = layer(hidden, 'log_sigma')
    z = mu + np.exp(log_sigma) * np.asarray(jax.random.normal(rng, mu.shape), np.float64)
  train = [(s, r) for s, r, k in zip(graph.senders, graph.receivers, split.train_edge_mask)
           if k and s < r]
  softplus = lambda t: math.log1p(math.exp(-abs(t))) + max(t, 0.0)
  negatives = np.asarray(inputs['negatives'])
  assert negatives.shape == (len(train), 2) and negatives.min() >= 0
  assert negatives.max() < graph.num_nodes
  want = (np.mean([softplus(-(z[i] @ z[j])) for i, j in train])
          + np.mean([softplus(z[i] @ z[j]) for i, j in negatives]))
  np.testing.assert_allclose(out.metrics['reconstruction'], want, rtol=2e-5)
  if variational:
    kl = np.mean([0.5 * np.sum(m**2 + np.exp(2 * s) - 1 - 2 * s)
                  for m, s in zip(mu, log_sigma)]) / graph.num_nodes
    np.testing.assert_allclose(out.metrics['kl'], kl, rtol=2e-5)
    want += kl
  else:
    assert 'kl' not in out.metrics and 'log_sigma' not in p
  np.testing.assert_allclose(value, want, rtol=2e-5)
  run.iterator.close()


def test_training_predicts_held_out_links_and_evaluates_from_mu(tmp_path):
  config = _config()
  config.num_steps = 40
  run = Run(config, str(tmp_path), devices=jax.devices()[:1])
  before = run.evaluate()
  losses = [float(run.advance(next(run.iterator))['loss']) for _ in range(config.num_steps)]
  after = run.evaluate()
  run.iterator.close()
  assert np.mean(losses[-5:]) < losses[0] - 0.1, losses
  assert after['link_auc'] > max(before['link_auc'], 0.75), (before, after)
  for key in ('link_auc', 'link_ap', 'link_val_auc', 'link_val_ap'):
    assert 0.0 <= after[key] <= 1.0
  # The metrics are those of mu's inner products on the split's test pairs.
  mu = np.asarray(run.method.represent(run.state.params, {}, {'node': np.arange(64)},
                                       run.constants))
  split = graph_data.link_split(run.dataset.graph, seed=0)
  np.testing.assert_allclose(after['link_auc'],
                             link_scores(mu, split.test_pos, split.test_neg)['auc'], rtol=1e-6)


@pytest.mark.parametrize('fields, message', [
    ({'hidden_dims': (32, 0)}, 'must be a tuple of positive ints'),
    ({'embedding_dim': 0}, 'embedding_dim=0 must be a positive int'),
    ({'test_fraction': 0.0}, 'with a sum below 1'),
    ({'val_fraction': 0.6, 'test_fraction': 0.5}, 'with a sum below 1'),
])
def test_bad_settings_are_clear_errors(tmp_path, fields, message):
  with pytest.raises(ConfigError, match=message):
    Run(_config(**fields), str(tmp_path), devices=jax.devices()[:1])


def test_an_image_dataset_is_refused(tmp_path):
  config = _config()
  config.dataset.name = 'digits'
  with pytest.raises(ConfigError, match='gae trains on graph data'):
    Run(config, str(tmp_path), devices=jax.devices()[:1])
