"""InfoNCE, NCE, SupCon, triplet and margin-contrastive losses.

Each is checked against a naive float64 loop, its gradients against float64 central differences
of that loop, and its loss and gradients on 8 simulated devices against one device.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jssl.losses import info_nce, margin_contrastive, nce, nt_xent, supcon, triplet
from sharding_check import assert_sharded_equals_single

# ----------------------------------------------------------------------------- naive references


def _normalise(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _negatives_of(negatives, i):
  return negatives if negatives.ndim == 2 else negatives[i]


def naive_info_nce(query, key, negatives, temperature):
  """Per-query cross-entropy with the positive as class 0, as MoCo's pseudo-code writes it."""
  q, k, negatives = _normalise(query), _normalise(key), _normalise(negatives)
  total = 0.0
  for i in range(q.shape[0]):
    logits = [np.dot(q[i], k[i]) / temperature]
    logits += [np.dot(q[i], n) / temperature for n in _negatives_of(negatives, i)]
    total += -np.log(np.exp(logits[0]) / np.sum(np.exp(logits)))
  return total / q.shape[0]


def naive_nce(query, key, negatives, temperature, log_partition, num_examples):
  """NPID's NCE written with probabilities, as in Wu et al. 2018 (eqs. 5-7)."""
  q, k, negatives = _normalise(query), _normalise(key), _normalise(negatives)
  z = np.exp(log_partition)
  total = 0.0
  for i in range(q.shape[0]):
    negatives_i = _negatives_of(negatives, i)
    noise = len(negatives_i) / num_examples  # m * P_n
    p_key = np.exp(np.dot(q[i], k[i]) / temperature) / z
    total += -np.log(p_key / (p_key + noise))
    for n in negatives_i:
      p_negative = np.exp(np.dot(q[i], n) / temperature) / z
      total += -np.log(1.0 - p_negative / (p_negative + noise))
  return total / q.shape[0]


def naive_supcon(z, labels, temperature):
  """Khosla et al.'s L_out, anchor by anchor; anchors without a positive are skipped."""
  z = _normalise(z)
  losses = []
  for i in range(len(z)):
    others = [a for a in range(len(z)) if a != i]
    positives = [p for p in others if labels[p] == labels[i]]
    if not positives:
      continue
    denominator = sum(np.exp(np.dot(z[i], z[a]) / temperature) for a in others)
    losses.append(-np.mean([np.log(np.exp(np.dot(z[i], z[p]) / temperature) / denominator)
                            for p in positives]))
  return float(np.mean(losses)) if losses else 0.0


def naive_triplet(anchor, positive, negative, margin):
  total = 0.0
  for a, p, n in zip(*(np.asarray(x, np.float64) for x in (anchor, positive, negative))):
    total += max(0.0, np.linalg.norm(a - p) - np.linalg.norm(a - n) + margin)
  return total / len(anchor)


def naive_margin_contrastive(x1, x2, same, margin):
  total = 0.0
  for a, b, y in zip(np.asarray(x1, np.float64), np.asarray(x2, np.float64), same):
    d = np.linalg.norm(a - b)
    total += y * 0.5 * d**2 + (1 - y) * 0.5 * max(0.0, margin - d) ** 2
  return total / len(x1)


# ----------------------------------------------------------------------------- helpers


def _jit(loss, **hyperparameters):
  # One compile per test instead of one per primitive: eager dispatch is slow on 2 CPU cores.
  return jax.jit(functools.partial(loss, **hyperparameters))


def _normal(rng, *shape):
  return rng.normal(size=shape).astype(np.float32)


def _assert_matches_naive_with_gradients(loss_fn, naive_fn, args, argnums, eps=1e-5):
  """`loss_fn` (float32) equals `naive_fn` (float64), and its gradients w.r.t. `argnums` equal
  float64 central differences of `naive_fn`. One compile covers both checks."""
  loss, grads = jax.jit(jax.value_and_grad(loss_fn, argnums=argnums))(*args)
  np.testing.assert_allclose(loss, naive_fn(*args), rtol=1e-5, atol=1e-5)
  for argnum, grad in zip(argnums, grads):
    numeric = np.zeros(np.shape(args[argnum]), np.float64)
    for idx in np.ndindex(numeric.shape):
      plus = [np.array(a, np.float64) if j == argnum else a for j, a in enumerate(args)]
      minus = [np.array(a, np.float64) if j == argnum else a for j, a in enumerate(args)]
      plus[argnum][idx] += eps
      minus[argnum][idx] -= eps
      numeric[idx] = (naive_fn(*plus) - naive_fn(*minus)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-4, err_msg=f'argument {argnum}')


# ----------------------------------------------------------------------------- info_nce
# Each loss: a batch-sized case against the naive loop, a small case (other hyperparameters)
# against the loop with its gradients, and the 8-device check. Few distinct shapes and
# hyperparameters keep the number of XLA compiles, which dominate the runtime, small.


@pytest.mark.parametrize('per_query', [False, True])
@pytest.mark.parametrize('n,k,d,temperature', [(16, 24, 8, 0.07)])
def test_info_nce_matches_naive_loop(per_query, n, k, d, temperature):
  rng = np.random.default_rng(n * k + per_query)
  query, key = _normal(rng, n, d), _normal(rng, n, d)
  negatives = _normal(rng, n, k, d) if per_query else _normal(rng, k, d)
  got = _jit(info_nce, temperature=temperature)(query, key, negatives)
  want = naive_info_nce(query, key, negatives, temperature)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('per_query', [False, True])
def test_info_nce_small_matches_naive_with_gradients(per_query):
  rng = np.random.default_rng(10 + per_query)
  negatives = _normal(rng, 4, 3, 3) if per_query else _normal(rng, 5, 3)
  args = (_normal(rng, 4, 3), _normal(rng, 4, 3), negatives)
  _assert_matches_naive_with_gradients(
      lambda q, k, n: info_nce(q, k, n, temperature=0.4),
      lambda q, k, n: naive_info_nce(q, k, n, 0.4), args, argnums=(0, 1, 2))


def test_info_nce_shared_negatives_sharded_or_replicated_equals_single_device():
  rng = np.random.default_rng(12)
  args = (_normal(rng, 16, 8), _normal(rng, 16, 8), _normal(rng, 24, 8))
  assert_sharded_equals_single(
      lambda q, k, n: info_nce(q, k, n, temperature=0.1), args,
      [(P('data'), P('data'), P('data')), (P('data'), P('data'), P())], argnums=(0, 1, 2))


def test_info_nce_per_query_negatives_sharded_equals_single_device():
  rng = np.random.default_rng(13)
  args = (_normal(rng, 16, 8), _normal(rng, 16, 8), _normal(rng, 16, 24, 8))
  assert_sharded_equals_single(lambda q, k, n: info_nce(q, k, n, temperature=0.1), args,
                               [(P('data'), P('data'), P('data'))], argnums=(0, 1, 2))


def test_info_nce_prefers_aligned_keys():
  rng = np.random.default_rng(14)
  query, other, negatives = (jnp.asarray(_normal(rng, *s)) for s in ((8, 4), (8, 4), (16, 4)))
  loss = _jit(info_nce, temperature=0.1)
  assert loss(query, query, negatives) < loss(query, other, negatives)


# ----------------------------------------------------------------------------- nce


@pytest.mark.parametrize('per_query', [False, True])
@pytest.mark.parametrize('n,k,d,temperature,log_partition,num_examples',
                         [(16, 24, 8, 0.07, 6.5, 1000)])
def test_nce_matches_naive_loop(per_query, n, k, d, temperature, log_partition, num_examples):
  rng = np.random.default_rng(20 + n + per_query)
  query, key = _normal(rng, n, d), _normal(rng, n, d)
  negatives = _normal(rng, n, k, d) if per_query else _normal(rng, k, d)
  got = _jit(nce, temperature=temperature, log_partition=log_partition,
             num_examples=num_examples)(query, key, negatives)
  want = naive_nce(query, key, negatives, temperature, log_partition, num_examples)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_nce_accepts_traced_log_partition():
  rng = np.random.default_rng(22)
  query, key, negatives = (jnp.asarray(_normal(rng, *s)) for s in ((8, 4), (8, 4), (6, 4)))
  fn = jax.jit(lambda lz: nce(query, key, negatives, temperature=0.2, log_partition=lz,
                              num_examples=50))
  want = naive_nce(query, key, negatives, 0.2, 1.5, 50)
  np.testing.assert_allclose(fn(jnp.float32(1.5)), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('per_query,log_partition', [(False, 0.0), (True, 2.0)])
def test_nce_small_matches_naive_with_gradients(per_query, log_partition):
  rng = np.random.default_rng(23 + per_query)
  negatives = _normal(rng, 4, 3, 3) if per_query else _normal(rng, 5, 3)
  args = (_normal(rng, 4, 3), _normal(rng, 4, 3), negatives, np.float32(log_partition))
  _assert_matches_naive_with_gradients(
      lambda q, k, n, lz: nce(q, k, n, temperature=0.4, log_partition=lz, num_examples=20),
      lambda q, k, n, lz: naive_nce(q, k, n, 0.4, lz, 20), args, argnums=(0, 1, 2, 3))


def test_nce_shared_negatives_sharded_or_replicated_equals_single_device():
  rng = np.random.default_rng(25)
  args = (_normal(rng, 16, 8), _normal(rng, 16, 8), _normal(rng, 24, 8), np.float32(4.0))
  assert_sharded_equals_single(
      lambda q, k, n, lz: nce(q, k, n, temperature=0.1, log_partition=lz, num_examples=500),
      args, [(P('data'), P('data'), P('data'), P()), (P('data'), P('data'), P(), P())],
      argnums=(0, 1, 2, 3))


def test_nce_per_query_negatives_sharded_equals_single_device():
  rng = np.random.default_rng(26)
  args = (_normal(rng, 16, 8), _normal(rng, 16, 8), _normal(rng, 16, 24, 8), np.float32(4.0))
  assert_sharded_equals_single(
      lambda q, k, n, lz: nce(q, k, n, temperature=0.1, log_partition=lz, num_examples=500),
      args, [(P('data'), P('data'), P('data'), P())], argnums=(0, 1, 2, 3))


def test_nce_stable_at_tiny_temperature():
  rng = np.random.default_rng(27)
  query, negatives = jnp.asarray(_normal(rng, 8, 4)), jnp.asarray(_normal(rng, 8, 4))

  def loss(q):
    return nce(q, q, negatives, temperature=1e-3, log_partition=0.0, num_examples=10)

  value, grad = jax.jit(jax.value_and_grad(loss))(query)
  assert np.isfinite(value) and np.all(np.isfinite(grad))


# ----------------------------------------------------------------------------- supcon


@pytest.mark.parametrize('m,d,num_classes,temperature', [(24, 8, 5, 0.1)])
def test_supcon_matches_naive_loop(m, d, num_classes, temperature):
  rng = np.random.default_rng(30 + m)
  z = _normal(rng, m, d)
  labels = rng.integers(0, num_classes, size=m)
  got = _jit(supcon, temperature=temperature)(z, labels)
  np.testing.assert_allclose(got, naive_supcon(z, labels, temperature), rtol=1e-5, atol=1e-5)


def test_supcon_with_two_views_per_image_is_nt_xent():
  rng = np.random.default_rng(31)
  z1, z2 = _normal(rng, 16, 8), _normal(rng, 16, 8)
  labels = np.concatenate([np.arange(16), np.arange(16)])
  got = _jit(supcon, temperature=0.2)(np.concatenate([z1, z2]), labels)
  np.testing.assert_allclose(got, _jit(nt_xent, temperature=0.2)(z1, z2), rtol=1e-5, atol=1e-5)


def test_supcon_excludes_anchors_whose_label_occurs_once():
  rng = np.random.default_rng(32)
  z = _normal(rng, 8, 4)
  labels = np.array([0, 0, 1, 2, 2, 2, 3, 0])  # labels 1 and 3 occur once
  got, grad = jax.jit(jax.value_and_grad(functools.partial(supcon, temperature=0.3)))(z, labels)
  want = naive_supcon(z, labels, 0.3)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  # Counting the singletons as zero-loss anchors would divide by 8 instead of 6.
  assert not np.isclose(want, want * 6 / 8)
  assert np.all(np.isfinite(grad))


def test_supcon_without_any_positive_is_zero_with_finite_gradient():
  rng = np.random.default_rng(33)
  z = jnp.asarray(_normal(rng, 8, 4))
  value, grad = jax.jit(jax.value_and_grad(functools.partial(supcon, temperature=0.1)))(
      z, jnp.arange(8))
  assert value == 0.0
  np.testing.assert_array_equal(grad, np.zeros_like(grad))


def test_supcon_small_matches_naive_with_gradients():
  rng = np.random.default_rng(34)
  z = _normal(rng, 7, 3)
  labels = np.array([0, 1, 0, 1, 1, 2, 3])
  _assert_matches_naive_with_gradients(
      lambda x: supcon(x, jnp.asarray(labels), temperature=0.4),
      lambda x: naive_supcon(x, labels, 0.4), (z,), argnums=(0,))


def test_supcon_sharded_equals_single_device():
  rng = np.random.default_rng(35)
  args = (_normal(rng, 32, 8), rng.integers(0, 6, size=32).astype(np.int32))
  assert_sharded_equals_single(lambda z, y: supcon(z, y, temperature=0.1), args,
                               [(P('data'), P('data'))], argnums=(0,))


# ----------------------------------------------------------------------------- triplet


@pytest.mark.parametrize('n,d,margin', [(16, 8, 1.0)])
def test_triplet_matches_naive_loop(n, d, margin):
  rng = np.random.default_rng(40 + n)
  anchor, positive, negative = _normal(rng, n, d), _normal(rng, n, d), _normal(rng, n, d)
  got = _jit(triplet, margin=margin)(anchor, positive, negative)
  want = naive_triplet(anchor, positive, negative, margin)
  assert 0.0 < want  # some triplets are active, so the test can fail
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_triplet_small_matches_naive_with_gradients():
  rng = np.random.default_rng(41)
  args = (_normal(rng, 6, 3), _normal(rng, 6, 3), _normal(rng, 6, 3))
  distances = [np.linalg.norm(args[0] - x, axis=-1) for x in args[1:]]
  hinge = distances[0] - distances[1] + 0.5
  assert np.all(np.abs(hinge) > 1e-2) and np.any(hinge > 0)  # away from the kink, some active
  _assert_matches_naive_with_gradients(
      lambda a, p, n: triplet(a, p, n, margin=0.5),
      lambda a, p, n: naive_triplet(a, p, n, 0.5), args, argnums=(0, 1, 2))


def test_triplet_finite_gradients_when_rows_coincide():
  rng = np.random.default_rng(42)
  anchor = jnp.asarray(_normal(rng, 4, 3))
  negative = jnp.asarray(_normal(rng, 4, 3))
  loss_and_grads = jax.jit(
      jax.value_and_grad(functools.partial(triplet, margin=0.3), argnums=(0, 1, 2)))
  for positive, neg in ((anchor, negative), (anchor, anchor)):
    value, grads = loss_and_grads(anchor, positive, neg)
    want = naive_triplet(anchor, positive, neg, 0.3)
    np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-6)
    for grad in grads:
      assert np.all(np.isfinite(grad))


def test_triplet_sharded_equals_single_device():
  rng = np.random.default_rng(43)
  args = (_normal(rng, 16, 8), _normal(rng, 16, 8), _normal(rng, 16, 8))
  assert_sharded_equals_single(lambda a, p, n: triplet(a, p, n, margin=1.0), args,
                               [(P('data'),) * 3], argnums=(0, 1, 2))


# ----------------------------------------------------------------------------- margin_contrastive


@pytest.mark.parametrize('n,d,margin', [(16, 8, 4.0)])
def test_margin_contrastive_matches_naive_loop(n, d, margin):
  rng = np.random.default_rng(50 + n)
  x1, x2 = _normal(rng, n, d), _normal(rng, n, d)
  same = rng.integers(0, 2, size=n)
  got = _jit(margin_contrastive, margin=margin)(x1, x2, same)
  np.testing.assert_allclose(got, naive_margin_contrastive(x1, x2, same, margin),
                             rtol=1e-5, atol=1e-5)


def test_margin_contrastive_small_matches_naive_with_gradients():
  rng = np.random.default_rng(51)
  x1, x2 = _normal(rng, 6, 3), _normal(rng, 6, 3)
  same = np.array([1, 0, 1, 0, 0, 1])
  distances = np.linalg.norm(x1 - x2, axis=-1)
  assert np.all(np.abs(distances - 2.5) > 1e-2)  # away from the margin's kink
  assert np.any((same == 0) & (distances < 2.5))  # some dissimilar pairs are pushed
  _assert_matches_naive_with_gradients(
      lambda a, b: margin_contrastive(a, b, jnp.asarray(same), margin=2.5),
      lambda a, b: naive_margin_contrastive(a, b, same, 2.5), (x1, x2), argnums=(0, 1))


def test_margin_contrastive_finite_gradients_at_zero_distance():
  rng = np.random.default_rng(52)
  x = jnp.asarray(_normal(rng, 4, 3))
  same = jnp.asarray([1, 0, 1, 0])
  value, grads = jax.jit(jax.value_and_grad(
      functools.partial(margin_contrastive, margin=1.5), argnums=(0, 1)))(x, x, same)
  np.testing.assert_allclose(value, 0.5 * 0.5 * 1.5**2, rtol=1e-6)  # half the pairs pay m^2/2
  for grad in grads:
    assert np.all(np.isfinite(grad))


def test_margin_contrastive_sharded_equals_single_device():
  rng = np.random.default_rng(53)
  args = (_normal(rng, 16, 8), _normal(rng, 16, 8), rng.integers(0, 2, size=16).astype(np.float32))
  assert_sharded_equals_single(lambda a, b, y: margin_contrastive(a, b, y, margin=4.0), args,
                               [(P('data'),) * 3], argnums=(0, 1, 2))


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize('call,match', [
    (lambda: info_nce(np.zeros((4, 3)), np.zeros((5, 3)), np.zeros((6, 3)), temperature=0.1),
     r'query and key of equal shape \[N, D\]; got \(4, 3\), \(5, 3\)'),
    (lambda: info_nce(np.zeros((4, 3)), np.zeros((4, 3)), np.zeros((6, 2)), temperature=0.1),
     r'negatives of shape \[K, D\].*got negatives \(6, 2\)'),
    (lambda: info_nce(np.zeros((4, 3)), np.zeros((4, 3)), np.zeros((5, 6, 3)),
                      temperature=0.1),
     r'N = 4 and D = 3.*got negatives \(5, 6, 3\)'),
    (lambda: info_nce(np.zeros((4, 3)), np.zeros((4, 3)), np.zeros((0, 3)), temperature=0.1),
     r'K >= 1'),
    (lambda: info_nce(np.zeros((4, 3)), np.zeros((4, 3)), np.zeros((3,)), temperature=0.1),
     r'got negatives \(3,\)'),
    (lambda: nce(np.zeros((4, 3)), np.zeros((4, 3)), np.zeros((6, 4)), temperature=0.1,
                 log_partition=0.0, num_examples=10),
     r'nce expects negatives.*got negatives \(6, 4\)'),
    (lambda: nce(np.zeros((4, 3)), np.zeros((4, 3)), np.zeros((6, 3)), temperature=0.1,
                 log_partition=np.zeros(2), num_examples=10),
     r'scalar log_partition; got shape \(2,\)'),
    (lambda: nce(np.zeros((4, 3)), np.zeros((4, 3)), np.zeros((6, 3)), temperature=0.1,
                 log_partition=0.0, num_examples=0),
     r'num_examples > 0'),
    (lambda: supcon(np.zeros((6, 3)), np.zeros((5,), np.int32), temperature=0.1),
     r'labels of shape \[M\]; got \(6, 3\), \(5,\)'),
    (lambda: supcon(np.zeros((6,)), np.zeros((6,), np.int32), temperature=0.1),
     r'z of shape \[M, D\]'),
    (lambda: triplet(np.zeros((4, 3)), np.zeros((4, 3)), np.zeros((4, 2)), margin=1.0),
     r'equal shape \[N, D\]; got \(4, 3\), \(4, 3\), \(4, 2\)'),
    (lambda: margin_contrastive(np.zeros((4, 3)), np.zeros((4, 3)), np.zeros((3,)),
                                margin=1.0),
     r'same of shape \[N\]; got \(4, 3\), \(4, 3\), \(3,\)'),
    (lambda: margin_contrastive(np.zeros((4, 3)), np.zeros((2, 3)), np.zeros((4,)),
                                margin=1.0),
     r'x1, x2 of equal shape'),
])
def test_rejects_bad_shapes(call, match):
  with pytest.raises(ValueError, match=match):
    call()
