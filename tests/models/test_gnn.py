"""Tests for jssl.models.gnn: a dense NumPy reference, padding, dtypes and 8 devices vs 1."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jssl.models.gnn import GCN, GCNLayer, gcn_norm

NUM_NODES, NUM_FEATURES = 24, 5


def random_graph(seed=0, num_nodes=NUM_NODES, num_undirected=20):
  """An undirected random graph (both directions listed), one duplicate edge, no self-loops."""
  rng = np.random.default_rng(seed)
  pairs = set()
  while len(pairs) < num_undirected:
    a, b = rng.integers(0, num_nodes, 2)
    if a != b:
      pairs.add((min(a, b), max(a, b)))
  pairs = sorted(pairs)
  pairs.append(pairs[0])  # A duplicate edge counts twice in A.
  senders = np.array([a for a, b in pairs] + [b for a, b in pairs], np.int32)
  receivers = np.array([b for a, b in pairs] + [a for a, b in pairs], np.int32)
  features = rng.standard_normal((num_nodes, NUM_FEATURES)).astype(np.float32)
  return features, senders, receivers


def dense_normalised_adjacency(senders, receivers, num_nodes, edge_mask=None):
  """D^-1/2 (A + I) D^-1/2 with A[r, s] = number of unmasked edges s -> r."""
  adjacency = np.eye(num_nodes)
  for e, (s, r) in enumerate(zip(senders, receivers)):
    if edge_mask is None or edge_mask[e]:
      adjacency[r, s] += 1
  inv_sqrt = 1 / np.sqrt(adjacency.sum(1))
  return inv_sqrt[:, None] * adjacency * inv_sqrt[None, :]


def dense_gcn(params, features, norm_adj, activation):
  x = np.asarray(features, np.float64)
  for i in range(len([k for k in params if k.startswith('gcn_')])):
    layer = params[f'gcn_{i}']
    x = norm_adj @ (x @ np.asarray(layer['dense']['kernel'])) + np.asarray(layer['bias'])
    if activation == 'prelu':
      slope = np.asarray(params[f'prelu_{i}']['negative_slope'])
      x = np.where(x >= 0, x, slope * x)
    else:
      x = np.maximum(x, 0)
  return x


def perturbed(variables, seed=0):
  """Variables plus noise, so that biases and PReLU slopes (zero / 0.25 at init) matter."""
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(
      lambda a: jnp.asarray(a + 0.3 * rng.standard_normal(a.shape), jnp.float32), variables)


def test_gcn_norm_matches_dense_normalisation():
  _, senders, receivers = random_graph()
  edge_mask = np.ones(len(senders), bool)
  edge_mask[[3, 7]] = False  # Masked edges contribute nothing, not even to degrees.
  for mask in (None, edge_mask):
    s, r, w = gcn_norm(jnp.asarray(senders), jnp.asarray(receivers), NUM_NODES, mask)
    assert s.shape == r.shape == w.shape == (len(senders) + NUM_NODES,)
    assert w.dtype == jnp.float32
    np.testing.assert_array_equal(s[-NUM_NODES:], np.arange(NUM_NODES))  # Self-loops last.
    dense = np.zeros((NUM_NODES, NUM_NODES))
    np.add.at(dense, (np.asarray(r), np.asarray(s)), np.asarray(w))
    np.testing.assert_allclose(
        dense, dense_normalised_adjacency(senders, receivers, NUM_NODES, mask), rtol=1e-6)
  with pytest.raises(ValueError, match='equal length'):
    gcn_norm(jnp.zeros(3, jnp.int32), jnp.zeros(4, jnp.int32), 5)


@pytest.mark.parametrize('activation', ['prelu', 'relu'])
def test_gcn_matches_dense_reference(activation):
  features, senders, receivers = random_graph(1)
  model = GCN(hidden_dims=(8, 6), activation=activation)
  assert model.features_dim == 6
  variables = model.init(jax.random.key(0), features, senders, receivers)
  params = variables['params']
  assert params['gcn_0']['dense']['kernel'].shape == (NUM_FEATURES, 8)
  assert params['gcn_1']['bias'].shape == (6,)
  if activation == 'prelu':
    slope = params['prelu_1']['negative_slope']
    assert slope.shape == (6,) and np.all(slope == 0.25)  # One slope per channel, DGI's init.
  else:
    assert not any(k.startswith('prelu') for k in params)
  variables = perturbed(variables)
  got = model.apply(variables, features, senders, receivers)
  assert got.shape == (NUM_NODES, 6) and got.dtype == jnp.float32
  want = dense_gcn(variables['params'], features,
                   dense_normalised_adjacency(senders, receivers, NUM_NODES), activation)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_gcn_layer_without_bias_and_dgi_default():
  features, senders, receivers = random_graph(2)
  s, r, w = gcn_norm(senders, receivers, NUM_NODES)
  layer = GCNLayer(4, use_bias=False)
  params = layer.init(jax.random.key(0), features, s, r, w)['params']
  assert set(params) == {'dense'}
  want = dense_normalised_adjacency(senders, receivers, NUM_NODES) @ (
      features @ np.asarray(params['dense']['kernel']))
  np.testing.assert_allclose(layer.apply({'params': params}, features, s, r, w), want,
                             rtol=1e-5, atol=1e-5)
  dgi = GCN()
  abstract = jax.eval_shape(lambda: dgi.init(jax.random.key(0), features, senders, receivers))
  assert dgi.features_dim == 512
  assert abstract['params']['gcn_0']['dense']['kernel'].shape == (NUM_FEATURES, 512)
  # Glorot-uniform kernels: bound sqrt(6 / (fan_in + fan_out)).
  kernel = np.asarray(params['dense']['kernel'])
  assert np.abs(kernel).max() <= np.sqrt(6 / (NUM_FEATURES + 4))


def test_padding_nodes_and_masked_edges_change_nothing():
  features, senders, receivers = random_graph(3)
  model = GCN(hidden_dims=(8,))
  variables = perturbed(model.init(jax.random.key(0), features, senders, receivers))
  want = model.apply(variables, features, senders, receivers)
  # Pad to 32 nodes and 64 edges: padding edges are masked and join arbitrary (real) nodes.
  pad_nodes, pad_edges = 32 - NUM_NODES, 64 - len(senders)
  features_p = np.concatenate([features, np.ones((pad_nodes, NUM_FEATURES), np.float32)])
  senders_p = np.concatenate([senders, np.arange(pad_edges) % NUM_NODES]).astype(np.int32)
  receivers_p = np.concatenate([receivers, (np.arange(pad_edges) * 7) % 32]).astype(np.int32)
  mask = np.arange(64) < len(senders)
  got = model.apply(variables, features_p, senders_p, receivers_p, mask)
  np.testing.assert_allclose(got[:NUM_NODES], want, rtol=1e-5, atol=1e-6)
  unmasked = model.apply(variables, features_p, senders_p, receivers_p)
  assert not np.allclose(unmasked[:NUM_NODES], want, atol=1e-3)  # The mask is what did it.


def test_eight_devices_equal_one_output_and_gradients():
  features, senders, receivers = random_graph(4)
  edges = len(senders) - len(senders) % 8  # Edge arrays sharded too: a multiple of 8.
  senders, receivers = senders[:edges], receivers[:edges]
  model = GCN(hidden_dims=(16, 8))
  variables = perturbed(model.init(jax.random.key(0), features, senders, receivers))

  @jax.jit
  def outputs_and_grads(params, features, senders, receivers):
    def loss(params):
      out = model.apply({'params': params}, features, senders, receivers)
      return jnp.sum(out**2), out
    (_, out), grads = jax.value_and_grad(loss, has_aux=True)(params)
    return out, grads

  out1, grads1 = outputs_and_grads(variables['params'], features, senders, receivers)
  mesh = Mesh(np.asarray(jax.devices()), ('data',))
  assert mesh.size == 8
  sharded = NamedSharding(mesh, P('data'))
  out8, grads8 = outputs_and_grads(variables['params'], jax.device_put(features, sharded),
                                   jax.device_put(senders, sharded),
                                   jax.device_put(receivers, sharded))
  assert len(jax.device_put(features, sharded).sharding.device_set) == 8
  np.testing.assert_allclose(out8, out1, rtol=1e-5, atol=1e-6)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
                         grads8, grads1)
  assert all(np.all(np.isfinite(g)) and np.any(g != 0) for g in jax.tree_util.tree_leaves(grads1))


def test_bfloat16_compute_float32_params_and_outputs():
  features, senders, receivers = random_graph(5)
  model32, model16 = GCN(hidden_dims=(8,)), GCN(hidden_dims=(8,), dtype=jnp.bfloat16)
  variables = model16.init(jax.random.key(0), features, senders, receivers)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(variables))
  out16 = model16.apply(variables, features, senders, receivers)
  out32 = model32.apply(variables, features, senders, receivers)
  assert out16.dtype == jnp.float32
  np.testing.assert_allclose(out16, out32, atol=0.05 * np.abs(out32).max())
  assert not np.array_equal(out16, out32)


def test_errors():
  features, senders, receivers = random_graph(6)
  with pytest.raises(ValueError, match=r"'tanh'.*\['prelu', 'relu'\]"):
    GCN(activation='tanh').init(jax.random.key(0), features, senders, receivers)
  with pytest.raises(ValueError, match='positive ints'):
    GCN(hidden_dims=()).init(jax.random.key(0), features, senders, receivers)
  with pytest.raises(ValueError, match=r'\[num_nodes, features\]'):
    GCN().init(jax.random.key(0), features[None], senders, receivers)
