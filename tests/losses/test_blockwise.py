"""Blockwise NT-Xent and InfoNCE: equal to the dense losses and to naive float64 loops (loss and
gradients), on 8 devices, without a [2N, 2N] buffer; the SimCLR / MoCo config switch."""

import importlib.util
import os

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from jssl.config import ConfigError
from jssl.losses import info_nce, info_nce_blockwise, nt_xent, nt_xent_blockwise
from jssl.methods import TrainInfo, moco, simclr
from sharding_check import assert_sharded_equals_single, mesh

# tests/methods/tiny.py's config and method helpers (that folder is not on sys.path here).
_TINY_SPEC = importlib.util.spec_from_file_location(
    'blockwise_tiny', os.path.join(os.path.dirname(__file__), '..', 'methods', 'tiny.py'))
tiny = importlib.util.module_from_spec(_TINY_SPEC)
_TINY_SPEC.loader.exec_module(tiny)

RTOL = ATOL = 1e-5


def unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def naive_nt_xent(z1, z2, temperature):
  """SimCLR's NT-Xent in float64 loops: anchor i's positive is i +- N, itself is left out."""
  z = unit(np.concatenate([z1, z2]))
  m, n = len(z), len(z1)
  total = 0.0
  for i in range(m):
    others = [np.dot(z[i], z[j]) / temperature for j in range(m) if j != i]
    top = max(others)
    lse = top + np.log(sum(np.exp(s - top) for s in others))
    total += lse - np.dot(z[i], z[(i + n) % m]) / temperature
  return total / m


def naive_info_nce(query, key, negatives, temperature):
  """MoCo's InfoNCE in float64 loops: logits [q.k, q.n_1..q.n_K] / T, label 0."""
  q, k, neg = unit(query), unit(key), unit(negatives)
  total = 0.0
  for i in range(len(q)):
    logits = [np.dot(q[i], k[i]) / temperature] + [np.dot(q[i], x) / temperature for x in neg]
    top = max(logits)
    total += top + np.log(sum(np.exp(s - top) for s in logits)) - logits[0]
  return total / len(q)


def random(shape, seed):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def assert_same_loss_and_grads(want_fn, got_fn, args):
  argnums = tuple(range(len(args)))
  want_loss, want_grads = jax.jit(jax.value_and_grad(want_fn, argnums))(*args)
  got_loss, got_grads = jax.jit(jax.value_and_grad(got_fn, argnums))(*args)
  np.testing.assert_allclose(got_loss, want_loss, rtol=RTOL, atol=ATOL)
  for argnum, got, want in zip(argnums, got_grads, want_grads):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f'argument {argnum}')


# (N, block_size, temperature): N a multiple of the block, not a multiple, block >= 2N, block 1.
CASES = [(1, 1, 0.5), (16, 4, 0.07), (13, 5, 0.2), (9, 100, 1.0), (12, 24, 0.1)]


@pytest.mark.parametrize('n,block_size,temperature', CASES)
def test_nt_xent_equals_dense(n, block_size, temperature):
  z1, z2 = random((n, 6), n), random((n, 6), n + 100)
  assert_same_loss_and_grads(
      lambda a, b: nt_xent(a, b, temperature=temperature),
      lambda a, b: nt_xent_blockwise(a, b, temperature=temperature, block_size=block_size),
      (z1, z2))


@pytest.mark.parametrize('n,block_size,temperature', CASES)
def test_info_nce_equals_dense(n, block_size, temperature):
  query, key = random((n, 6), n), random((n, 6), n + 100)
  negatives = random((2 * n + 3, 6), n + 200)  # K not a multiple of the block either
  assert_same_loss_and_grads(
      lambda q, k, neg: info_nce(q, k, neg, temperature=temperature),
      lambda q, k, neg: info_nce_blockwise(q, k, neg, temperature=temperature,
                                           block_size=block_size),
      (query, key, negatives))


def test_info_nce_per_query_negatives_equal_dense():
  query, key, negatives = random((6, 4), 0), random((6, 4), 1), random((6, 5, 4), 2)
  assert_same_loss_and_grads(
      lambda q, k, neg: info_nce(q, k, neg, temperature=0.2),
      lambda q, k, neg: info_nce_blockwise(q, k, neg, temperature=0.2, block_size=2),
      (query, key, negatives))


@pytest.mark.parametrize('n,block_size,temperature', [(7, 3, 0.07), (10, 4, 1.0)])
def test_match_naive_float64_loops(n, block_size, temperature):
  z1, z2, negatives = random((n, 5), 1), random((n, 5), 2), random((n + 2, 5), 3)
  got = jax.jit(lambda a, b: nt_xent_blockwise(a, b, temperature=temperature,
                                               block_size=block_size))(z1, z2)
  np.testing.assert_allclose(got, naive_nt_xent(z1, z2, temperature), rtol=RTOL)
  got = jax.jit(lambda q, k, neg: info_nce_blockwise(q, k, neg, temperature=temperature,
                                                     block_size=block_size))(z1, z2, negatives)
  np.testing.assert_allclose(got, naive_info_nce(z1, z2, negatives, temperature), rtol=RTOL)


def _finite_differences(fn, args, eps=1e-5):
  """Central differences of the float64 function `fn` with respect to every argument."""
  args = [np.asarray(a, np.float64) for a in args]
  grads = []
  for argnum, x in enumerate(args):
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
      plus, minus = [a.copy() for a in args], [a.copy() for a in args]
      plus[argnum][idx] += eps
      minus[argnum][idx] -= eps
      grad[idx] = (fn(*plus) - fn(*minus)) / (2 * eps)
    grads.append(grad)
  return grads


def test_gradients_match_finite_differences_of_naive_loops():
  z1, z2, negatives = random((3, 3), 4), random((3, 3), 5), random((4, 3), 6)
  grads = jax.jit(jax.grad(lambda a, b: nt_xent_blockwise(a, b, temperature=0.5, block_size=2),
                           argnums=(0, 1)))(z1, z2)
  numeric = _finite_differences(lambda a, b: naive_nt_xent(a, b, 0.5), (z1, z2))
  for got, want in zip(grads, numeric):
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
  grads = jax.jit(jax.grad(lambda q, k, neg: info_nce_blockwise(q, k, neg, temperature=0.5,
                                                                block_size=2),
                           argnums=(0, 1, 2)))(z1, z2, negatives)
  numeric = _finite_differences(lambda q, k, neg: naive_info_nce(q, k, neg, 0.5),
                                (z1, z2, negatives))
  for got, want in zip(grads, numeric):
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


def test_half_precision_inputs_are_computed_in_float32():
  z1, z2 = random((6, 4), 7), random((6, 4), 8)
  got = nt_xent_blockwise(z1.astype(jnp.bfloat16), z2.astype(jnp.bfloat16), temperature=0.2,
                          block_size=4)
  assert got.dtype == jnp.float32
  want = nt_xent(z1.astype(jnp.bfloat16), z2.astype(jnp.bfloat16), temperature=0.2)
  np.testing.assert_allclose(got, want, rtol=RTOL)


def test_nt_xent_sharded_over_8_devices_equals_single_device():
  z1, z2 = random((32, 8), 9), random((32, 8), 10)
  assert_sharded_equals_single(
      lambda a, b: nt_xent_blockwise(a, b, temperature=0.1, block_size=12), (z1, z2),
      [(P('data'), P('data')), (P('data'), P())])


def test_info_nce_sharded_over_8_devices_equals_single_device():
  query, key, queue = random((32, 8), 11), random((32, 8), 12), random((40, 8), 13)
  assert_sharded_equals_single(
      lambda q, k, neg: info_nce_blockwise(q, k, neg, temperature=0.2, block_size=12),
      (query, key, queue), [(P('data'), P('data'), P()), (P('data'), P('data'), P('data'))])


def _sharded_loss_and_grads(loss_fn, args, specs):
  placed = [jax.device_put(a, NamedSharding(mesh(), spec)) for a, spec in zip(args, specs)]
  return jax.jit(jax.value_and_grad(loss_fn, tuple(range(len(args)))))(*placed)


@pytest.mark.parametrize('block_size', [3, 64])  # several blocks per device; one
def test_shard_map_over_8_devices_equals_dense_single_device(block_size):
  z1, z2, queue = random((32, 8), 14), random((32, 8), 15), random((20, 8), 16)
  for dense_fn, blockwise_fn, args, specs in [
      (lambda a, b: nt_xent(a, b, temperature=0.1),
       lambda a, b: nt_xent_blockwise(a, b, temperature=0.1, block_size=block_size,
                                      mesh=mesh()),
       (z1, z2), (P('data'), P('data'))),
      (lambda q, k, neg: info_nce(q, k, neg, temperature=0.2),
       lambda q, k, neg: info_nce_blockwise(q, k, neg, temperature=0.2, block_size=block_size,
                                            mesh=mesh()),
       (z1, z2, queue), (P('data'), P('data'), P()))]:
    argnums = tuple(range(len(args)))
    want_loss, want_grads = jax.jit(jax.value_and_grad(dense_fn, argnums))(*args)
    got_loss, got_grads = _sharded_loss_and_grads(blockwise_fn, args, specs)
    np.testing.assert_allclose(got_loss, want_loss, rtol=RTOL, atol=ATOL)
    for argnum, got, want in zip(argnums, got_grads, want_grads):
      np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f'argument {argnum}')


def _scan_lengths(jaxpr):
  """The set of `length`s of every scan in `jaxpr` and its sub-jaxprs."""
  lengths = {eqn.params['length'] for eqn in jaxpr.eqns if eqn.primitive.name == 'scan'}
  for sub in jax.extend.core.subjaxprs(jaxpr):
    lengths |= _scan_lengths(sub)
  return lengths


def test_shard_map_devices_scan_only_their_own_rows():
  n, block_size = 64, 4  # 2N = 128 rows: 32 blocks; 16 rows (4 blocks) per device
  z = jnp.zeros((n, 8), jnp.float32)

  def lengths(**kwargs):
    def loss_fn(a, b):
      return nt_xent_blockwise(a, b, temperature=0.1, block_size=block_size, **kwargs)

    return _scan_lengths(jax.make_jaxpr(jax.value_and_grad(loss_fn, (0, 1)))(z, z).jaxpr)

  assert lengths() == {32}
  assert lengths(mesh=mesh()) == {4, 32}  # 4 row blocks, each against all 32 column blocks


def test_shard_map_rejects_a_batch_that_does_not_split_over_the_devices():
  with pytest.raises(ValueError, match='multiple of 8'):
    nt_xent_blockwise(jnp.ones((12, 3)), jnp.ones((12, 3)), temperature=0.1, block_size=4,
                      mesh=mesh())
  with pytest.raises(ValueError, match="no 'batch' axis"):
    info_nce_blockwise(jnp.ones((8, 3)), jnp.ones((8, 3)), jnp.ones((5, 3)), temperature=0.1,
                       block_size=4, mesh=mesh(), axis_name='batch')


def _max_intermediate_size(jaxpr):
  """Elements of the largest array any equation of `jaxpr` (or of its sub-jaxprs) produces."""
  sizes = [int(np.prod(getattr(var.aval, 'shape', ())))
           for eqn in jaxpr.eqns for var in eqn.outvars]
  sizes += [_max_intermediate_size(sub) for sub in jax.extend.core.subjaxprs(jaxpr)]
  return max(sizes, default=0)


def test_nt_xent_never_builds_the_similarity_matrix():
  n, d, block_size = 512, 16, 64
  z = jnp.zeros((n, d), jnp.float32)

  def largest(loss_fn):
    return _max_intermediate_size(jax.make_jaxpr(jax.value_and_grad(loss_fn, (0, 1)))(z, z).jaxpr)

  assert largest(lambda a, b: nt_xent(a, b, temperature=0.1)) >= (2 * n) ** 2  # the check bites
  assert largest(lambda a, b: nt_xent_blockwise(a, b, temperature=0.1,
                                                block_size=block_size)) <= 2 * n * d


def test_compiled_blockwise_temporaries_are_far_below_the_dense_matrix():
  n, d = 4096, 128
  matrix_bytes = 4 * (2 * n) ** 2  # one float32 [2N, 2N]: 256 MiB
  z = jax.ShapeDtypeStruct((n, d), jnp.float32)

  def temp_bytes(loss_fn):
    compiled = jax.jit(jax.value_and_grad(loss_fn, (0, 1))).lower(z, z).compile()
    return compiled.memory_analysis().temp_size_in_bytes

  assert temp_bytes(lambda a, b: nt_xent(a, b, temperature=0.1)) >= matrix_bytes
  assert temp_bytes(lambda a, b: nt_xent_blockwise(a, b, temperature=0.1,
                                                   block_size=256)) < matrix_bytes / 8


def test_rejects_bad_shapes_and_block_sizes():
  with pytest.raises(ValueError, match='equal shape'):
    nt_xent_blockwise(jnp.zeros((4, 3)), jnp.zeros((5, 3)), temperature=0.1, block_size=2)
  for block_size in (0, -1, 2.5, True):
    with pytest.raises(ValueError, match='block_size'):
      nt_xent_blockwise(jnp.ones((4, 3)), jnp.ones((4, 3)), temperature=0.1,
                        block_size=block_size)
  with pytest.raises(ValueError, match='negatives of shape'):
    info_nce_blockwise(jnp.ones((4, 3)), jnp.ones((4, 3)), jnp.ones((6, 2)), temperature=0.1,
                       block_size=2)


INFO = TrainInfo(num_examples=100, num_classes=10, image_channels=1, num_steps=10)


@pytest.mark.parametrize('module,overrides', [(simclr, {}), (moco, {'queue_size': 16})])
def test_config_switches_the_method_loss(module, overrides):
  name = module.__name__.rsplit('.', 1)[-1]
  dense_config = tiny.tiny_config(name, image_size=8, **overrides)
  assert dense_config[name].loss_impl == 'dense'  # the experiment config's default
  blockwise_config = tiny.tiny_config(name, image_size=8, loss_impl='blockwise',
                                      loss_block_size=3, **overrides)
  dense, blockwise = module.create(dense_config, INFO), module.create(blockwise_config, INFO)
  # Only the loss differs, so both methods take the same parameters and state.
  args = tiny.initialise(dense) + (jnp.asarray(0), jax.random.key(2))
  values = []
  for method, wants_scan in ((dense, False), (blockwise, True)):
    traced = jax.jit(lambda *a, method=method: method.loss(*a)[0]).trace(*args)
    assert ('scan' in str(traced.jaxpr)) == wants_scan  # each config reached its own loss
    values.append(traced.lower().compile()(*args))
  np.testing.assert_allclose(values[1], values[0], rtol=RTOL)


@pytest.mark.parametrize('module', [simclr, moco])
@pytest.mark.parametrize('field,value', [('loss_impl', 'sparse'), ('loss_block_size', 0),
                                         ('loss_block_size', -4)])
def test_bad_loss_config_raises_config_error(module, field, value):
  name = module.__name__.rsplit('.', 1)[-1]
  config = tiny.tiny_config(name, **{field: value})
  with pytest.raises(ConfigError, match=f'config.{name}.{field}='):
    module.create(config, INFO)
