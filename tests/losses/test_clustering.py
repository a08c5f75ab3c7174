"""Sinkhorn, SwAV (two views and multi-crop, with a queue) and DINO losses.

Each is checked against a naive float64 loop, its gradients against float64 central differences
of that loop with the targets (codes, teacher probabilities) held fixed — so a gradient leaking
through a target shows up —, and its loss and gradients with the batch sharded over 8 simulated
devices against one device (a per-device Sinkhorn or centre would differ).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jssl.losses import dino, dino_center_update, sinkhorn, swav, swav_multicrop
from sharding_check import assert_sharded_equals_single, mesh

# ----------------------------------------------------------------------------- naive references


def naive_sinkhorn(scores, epsilon, num_iters):
  """SwAV's Algorithm 1 with explicit loops: Q is [K, B]; rows are prototypes."""
  scores = np.asarray(scores, np.float64)
  b, k = scores.shape
  q = np.exp(scores / epsilon).T
  q /= q.sum()
  for _ in range(num_iters):
    for row in range(k):
      q[row] /= q[row].sum() * k
    for col in range(b):
      q[:, col] /= q[:, col].sum() * b
  return (q * b).T


def _log_softmax(x):
  x = np.asarray(x, np.float64)
  return x - x.max() - np.log(np.sum(np.exp(x - x.max())))


def _softmax(x):
  return np.exp(_log_softmax(x))


def naive_swav_multicrop(scores, num_global, temperature, epsilon, num_iters, queue=None,
                         codes=None):
  """Pair by pair, as SwAV's training loop; `codes` (a list per global view) are used as given
  when passed (gradient references hold the targets fixed)."""
  scores = np.asarray(scores, np.float64)
  num_views, batch, _ = scores.shape
  if codes is None:
    codes = []
    for i in range(num_global):
      assign = scores[i] if queue is None else np.concatenate([queue[i], scores[i]])
      codes.append(naive_sinkhorn(assign, epsilon, num_iters)[-batch:])
  total = 0.0
  for i in range(num_global):
    sub = 0.0
    for v in range(num_views):
      if v == i:
        continue
      for b in range(batch):
        sub -= np.sum(codes[i][b] * _log_softmax(scores[v, b] / temperature)) / batch
    total += sub / (num_views - 1)
  return total / num_global


def naive_dino(student, teacher, center, student_temp, teacher_temp, targets=None):
  student, teacher = np.asarray(student, np.float64), np.asarray(teacher, np.float64)
  if targets is None:
    targets = [[_softmax((teacher[i, n] - center) / teacher_temp)
                for n in range(teacher.shape[1])] for i in range(teacher.shape[0])]
  total, pairs = 0.0, 0
  for i in range(teacher.shape[0]):
    for v in range(student.shape[0]):
      if v == i:
        continue
      total += np.mean([-np.sum(targets[i][n] * _log_softmax(student[v, n] / student_temp))
                        for n in range(student.shape[1])])
      pairs += 1
  return total / pairs


# ----------------------------------------------------------------------------- helpers


def _cosines(rng, *shape):
  """Scores in [-1, 1] like SwAV's cosine similarities."""
  return np.tanh(rng.normal(size=shape)).astype(np.float32)


def _finite_differences(fn, x, eps=1e-5):
  x = np.asarray(x, np.float64)
  grad = np.zeros_like(x)
  for idx in np.ndindex(x.shape):
    plus, minus = x.copy(), x.copy()
    plus[idx] += eps
    minus[idx] -= eps
    grad[idx] = (fn(plus) - fn(minus)) / (2 * eps)
  return grad


# ----------------------------------------------------------------------------- sinkhorn


@pytest.mark.parametrize('epsilon,num_iters', [(0.05, 3), (0.3, 1)])
def test_sinkhorn_matches_naive_loop(epsilon, num_iters):
  rng = np.random.default_rng(int(epsilon * 100) + num_iters)
  scores = _cosines(rng, 24, 7)
  codes = jax.jit(lambda s: sinkhorn(s, epsilon=epsilon, num_iters=num_iters))(scores)
  want = naive_sinkhorn(scores, epsilon, num_iters)
  np.testing.assert_allclose(codes, want, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(np.sum(codes, axis=1), 1.0, rtol=1e-5)


def test_sinkhorn_converged_codes_are_equipartitioned():
  rng = np.random.default_rng(1)
  scores = _cosines(rng, 32, 8)
  scores[:, 0] += 1.0  # a prototype every sample prefers: equipartition must spread them
  codes = np.asarray(jax.jit(lambda s: sinkhorn(s, epsilon=0.5, num_iters=100))(scores))
  np.testing.assert_allclose(codes.sum(axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(codes.sum(axis=0), 32 / 8, rtol=1e-4)
  # Without the prototype normalisation (a plain softmax) prototype 0 would take most mass.
  plain = np.asarray(jax.nn.softmax(scores / 0.5, axis=1))
  assert plain.sum(axis=0)[0] > 2 * 32 / 8


def test_sinkhorn_stable_for_large_scores_and_small_epsilon():
  rng = np.random.default_rng(2)
  scores = 50.0 * rng.normal(size=(16, 6)).astype(np.float32)  # exp(score / eps) overflows
  codes = jax.jit(lambda s: sinkhorn(s, epsilon=0.01, num_iters=3))(scores)
  assert np.all(np.isfinite(codes))
  np.testing.assert_allclose(np.sum(codes, axis=1), 1.0, rtol=1e-5)


def test_sinkhorn_sharded_batch_equals_single_device():
  rng = np.random.default_rng(3)
  scores = _cosines(rng, 16, 5)
  fn = jax.jit(lambda s: sinkhorn(s, epsilon=0.05, num_iters=3))
  want = fn(scores)
  got = fn(jax.device_put(scores, NamedSharding(mesh(), P('data'))))
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(got, naive_sinkhorn(scores, 0.05, 3), rtol=1e-4, atol=1e-6)
  # Per-device Sinkhorn (2 samples each) would give different codes: the check can fail.
  per_device = np.concatenate([naive_sinkhorn(scores[i:i + 2], 0.05, 3) for i in range(0, 16, 2)])
  assert np.max(np.abs(per_device - np.asarray(want))) > 1e-2


def test_sinkhorn_rejects_bad_arguments():
  with pytest.raises(ValueError, match=r'scores \[B, K\]'):
    sinkhorn(jnp.zeros((2, 3, 4)), epsilon=0.05, num_iters=3)
  with pytest.raises(ValueError, match='num_iters >= 1'):
    sinkhorn(jnp.zeros((2, 3)), epsilon=0.05, num_iters=0)


# ----------------------------------------------------------------------------- swav


def test_swav_matches_naive_loop_and_fixed_code_gradients():
  rng = np.random.default_rng(10)
  s1, s2 = _cosines(rng, 4, 5), _cosines(rng, 4, 5)
  hyper = {'temperature': 0.1, 'epsilon': 0.05, 'num_iters': 3}
  value, grads = jax.jit(jax.value_and_grad(lambda a, b: swav(a, b, **hyper), argnums=(0, 1)))(
      s1, s2)
  np.testing.assert_allclose(value, naive_swav_multicrop(np.stack([s1, s2]), 2, 0.1, 0.05, 3),
                             rtol=1e-5)
  codes = [naive_sinkhorn(s, 0.05, 3) for s in (s1, s2)]

  def fixed(a, b):
    return naive_swav_multicrop(np.stack([a, b]), 2, 0.1, 0.05, 3, codes=codes)

  numeric1 = _finite_differences(lambda a: fixed(a, s2), s1)
  numeric2 = _finite_differences(lambda b: fixed(s1, b), s2)
  np.testing.assert_allclose(grads[0], numeric1, rtol=1e-3, atol=1e-4)
  np.testing.assert_allclose(grads[1], numeric2, rtol=1e-3, atol=1e-4)
  # The codes' own dependence on the scores is not small: the stop-gradient is visible.
  through_codes = _finite_differences(
      lambda a: naive_swav_multicrop(np.stack([a, s2]), 2, 0.1, 0.05, 3), s1)
  assert np.max(np.abs(through_codes - numeric1)) > 1e-2


def test_swav_is_the_two_view_multicrop_loss():
  rng = np.random.default_rng(11)
  s1, s2 = _cosines(rng, 8, 6), _cosines(rng, 8, 6)
  hyper = {'temperature': 0.2, 'epsilon': 0.1, 'num_iters': 3}
  two = jax.jit(lambda a, b: swav(a, b, **hyper))(s1, s2)
  multi = jax.jit(lambda s: swav_multicrop(s, num_global=2, **hyper))(np.stack([s1, s2]))
  np.testing.assert_allclose(two, multi, rtol=1e-6)


@pytest.mark.parametrize('with_queue', [False, True])
def test_swav_multicrop_matches_naive_loop_with_gradients(with_queue):
  rng = np.random.default_rng(12 + with_queue)
  scores = _cosines(rng, 4, 3, 5)  # 2 global + 2 local views, B = 3, K = 5
  queue = _cosines(rng, 2, 6, 5) if with_queue else None
  hyper = {'num_global': 2, 'temperature': 0.1, 'epsilon': 0.05, 'num_iters': 3}

  def loss(s, q):
    return swav_multicrop(s, queue_scores=q if with_queue else None, **hyper)

  placeholder = queue if with_queue else np.zeros((), np.float32)
  value, (grad, grad_queue) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(
      scores, placeholder)
  np.testing.assert_allclose(value, naive_swav_multicrop(scores, 2, 0.1, 0.05, 3, queue),
                             rtol=1e-5)
  codes = [naive_sinkhorn(scores[i] if queue is None else np.concatenate([queue[i], scores[i]]),
                          0.05, 3)[-3:] for i in range(2)]
  numeric = _finite_differences(
      lambda s: naive_swav_multicrop(s, 2, 0.1, 0.05, 3, codes=codes), scores)
  np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-4)
  if with_queue:
    np.testing.assert_array_equal(grad_queue, 0.0)
    # The queue changes the codes, hence the loss.
    assert abs(naive_swav_multicrop(scores, 2, 0.1, 0.05, 3) - float(value)) > 1e-3


def test_swav_multicrop_sharded_equals_single_device():
  rng = np.random.default_rng(14)
  scores, queue = _cosines(rng, 4, 16, 6), _cosines(rng, 2, 32, 6)

  def loss(s, q):
    return swav_multicrop(s, num_global=2, temperature=0.1, epsilon=0.05, num_iters=3,
                          queue_scores=q)

  assert_sharded_equals_single(loss, (scores, queue), [(P(None, 'data'), P(None, 'data'))],
                               argnums=(0,))


def test_swav_rejects_mismatched_shapes():
  with pytest.raises(ValueError, match='equal shape'):
    swav(jnp.zeros((4, 3)), jnp.zeros((4, 2)), temperature=0.1, epsilon=0.05, num_iters=3)
  with pytest.raises(ValueError, match='queue_scores'):
    swav_multicrop(jnp.zeros((3, 4, 5)), num_global=2, temperature=0.1, epsilon=0.05,
                   num_iters=3, queue_scores=jnp.zeros((1, 8, 5)))


# ----------------------------------------------------------------------------- dino


def test_dino_matches_naive_loop_with_gradients_and_stops_teacher_gradients():
  rng = np.random.default_rng(20)
  student = rng.normal(size=(4, 3, 5)).astype(np.float32)
  teacher = rng.normal(size=(2, 3, 5)).astype(np.float32)
  center = rng.normal(size=(5,)).astype(np.float32)

  def loss(s, t, c):
    return dino(s, t, c, student_temp=0.1, teacher_temp=0.4)

  value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(student, teacher, center)
  np.testing.assert_allclose(value, naive_dino(student, teacher, center, 0.1, 0.4), rtol=1e-5)
  numeric = _finite_differences(lambda s: naive_dino(s, teacher, center, 0.1, 0.4), student)
  np.testing.assert_allclose(grads[0], numeric, rtol=1e-3, atol=1e-4)
  np.testing.assert_array_equal(grads[1], 0.0)
  np.testing.assert_array_equal(grads[2], 0.0)
  # Without the stop-gradient the teacher would get a gradient: the check can fail.
  assert np.max(np.abs(_finite_differences(
      lambda t: naive_dino(student, t, center, 0.1, 0.4), teacher))) > 1e-2


def test_dino_centre_and_temperature_act_on_the_teacher():
  rng = np.random.default_rng(21)
  student = rng.normal(size=(3, 4, 6)).astype(np.float32)
  teacher = rng.normal(size=(2, 4, 6)).astype(np.float32)
  center = 3.0 * rng.normal(size=(6,)).astype(np.float32)
  fn = jax.jit(lambda s, t, c, tt: dino(s, t, c, student_temp=0.1, teacher_temp=tt))
  for teacher_temp in (0.04, 0.07):
    np.testing.assert_allclose(fn(student, teacher, center, teacher_temp),
                               naive_dino(student, teacher, center, 0.1, teacher_temp),
                               rtol=1e-5)
  assert abs(float(fn(student, teacher, center, 0.04))
             - float(fn(student, teacher, np.zeros(6, np.float32), 0.04))) > 1e-3


def test_dino_sharded_equals_single_device():
  rng = np.random.default_rng(22)
  student = rng.normal(size=(4, 16, 8)).astype(np.float32)
  teacher = rng.normal(size=(2, 16, 8)).astype(np.float32)
  center = rng.normal(size=(8,)).astype(np.float32)

  def loss(s, t, c):
    return dino(s, t, c, student_temp=0.1, teacher_temp=0.05)

  assert_sharded_equals_single(loss, (student, teacher, center),
                               [(P(None, 'data'), P(None, 'data'), P())])


def test_dino_center_update_is_a_global_batch_mean():
  rng = np.random.default_rng(23)
  teacher = rng.normal(size=(2, 16, 8)).astype(np.float32)
  center = rng.normal(size=(8,)).astype(np.float32)
  want = 0.9 * center + 0.1 * teacher.reshape(-1, 8).astype(np.float64).mean(axis=0)
  fn = jax.jit(lambda c, t: dino_center_update(c, t, momentum=0.9))
  np.testing.assert_allclose(fn(center, teacher), want, rtol=1e-5, atol=1e-6)
  sharded = fn(center, jax.device_put(teacher, NamedSharding(mesh(), P(None, 'data'))))
  np.testing.assert_allclose(sharded, want, rtol=1e-5, atol=1e-6)
  grad = jax.grad(lambda t: jnp.sum(dino_center_update(center, t, momentum=0.9)))(teacher)
  np.testing.assert_array_equal(grad, 0.0)


def test_dino_rejects_bad_shapes():
  with pytest.raises(ValueError, match='Vt <= 2'):
    dino(jnp.zeros((2, 3, 4)), jnp.zeros((3, 3, 4)), jnp.zeros(4), student_temp=0.1,
         teacher_temp=0.04)
  with pytest.raises(ValueError, match='Vs >= 2'):
    dino(jnp.zeros((1, 3, 4)), jnp.zeros((1, 3, 4)), jnp.zeros(4), student_temp=0.1,
         teacher_temp=0.04)
