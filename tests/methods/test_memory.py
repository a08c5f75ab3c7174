"""Queue, memory-bank and EMA semantics (jssl.methods.memory), and MoCo's use of them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jssl.methods import memory
from tiny import tiny_config


def test_queue_push_is_fifo_and_wraps_around():
  size, dim = 6, 2
  queue = jnp.zeros((size, dim))
  pointer = jnp.zeros((), jnp.int32)
  pushed = []
  for step in range(5):  # batches of 4 into 6 rows: wraps at steps 1, 2, 4
    keys = jnp.full((4, dim), 0.0) + jnp.arange(4 * step, 4 * step + 4)[:, None]
    queue, pointer = memory.queue_push(queue, pointer, keys)
    pushed.extend(range(4 * step, 4 * step + 4))
    assert int(pointer) == (4 * (step + 1)) % size
    # The queue holds exactly the newest `size` keys; the pointer row is the oldest of them.
    if len(pushed) < size:
      continue
    newest = pushed[-size:]
    assert sorted(np.asarray(queue[:, 0]).astype(int).tolist()) == sorted(newest)
    oldest_first = np.roll(np.asarray(queue[:, 0]), -int(pointer)).astype(int).tolist()
    assert oldest_first == newest
  np.testing.assert_array_equal(queue[:, 1], queue[:, 0])  # rows are written whole


def test_queue_push_rejects_a_batch_larger_than_the_queue():
  with pytest.raises(ValueError, match='at least one global batch'):
    memory.queue_push(jnp.zeros((4, 3)), jnp.zeros((), jnp.int32), jnp.zeros((8, 3)))


def test_sharded_push_enqueues_the_whole_global_batch():
  mesh = Mesh(np.asarray(jax.devices()), ('data',))
  keys = jnp.arange(32 * 3, dtype=jnp.float32).reshape(32, 3)
  queue = jnp.zeros((64, 3))
  push = jax.jit(memory.queue_push)
  want_queue, want_pointer = push(queue, jnp.asarray(40, jnp.int32), keys)
  sharded = jax.device_put(keys, NamedSharding(mesh, P('data')))
  assert len(sharded.sharding.device_set) == 8
  got_queue, got_pointer = push(jax.device_put(queue, NamedSharding(mesh, P())),
                                jnp.asarray(40, jnp.int32), sharded)
  np.testing.assert_array_equal(got_queue, want_queue)
  assert int(got_pointer) == int(want_pointer) == 8
  # All 32 keys, from all 8 shards, are in rows 40..63 and 0..7, in batch order.
  np.testing.assert_array_equal(np.concatenate([got_queue[40:], got_queue[:8]]), keys)


def test_ema_update_math_and_no_gradient_to_online():
  target = {'w': jnp.array([1.0, 2.0]), 'b': jnp.array(3.0)}
  online = {'w': jnp.array([5.0, -2.0]), 'b': jnp.array(1.0)}
  new = memory.ema_update(target, online, 0.75)
  np.testing.assert_allclose(new['w'], [0.75 * 1 + 0.25 * 5, 0.75 * 2 - 0.25 * 2])
  np.testing.assert_allclose(new['b'], 0.75 * 3 + 0.25 * 1)
  np.testing.assert_allclose(memory.ema_update(target, online, 1.0)['w'], target['w'])
  np.testing.assert_allclose(memory.ema_update(target, online, 0.0)['w'], online['w'])
  grad = jax.grad(lambda o: jnp.sum(memory.ema_update(target, o, 0.5)['w']))(online)
  np.testing.assert_array_equal(grad['w'], 0.0)


def test_momentum_schedules():
  assert float(memory.momentum_schedule(7, base=0.99, num_steps=10, schedule='constant')) == \
      pytest.approx(0.99)
  cosine = [float(memory.momentum_schedule(s, base=0.996, num_steps=100, schedule='cosine'))
            for s in (0, 50, 100)]
  assert cosine == pytest.approx([0.996, 0.998, 1.0], abs=1e-6)
  with pytest.raises(ValueError, match='unknown momentum schedule'):
    memory.momentum_schedule(0, base=0.9, num_steps=1, schedule='linear')


def test_bank_update_touches_only_the_batch_rows():
  bank = memory.init_bank(jax.random.key(0), 10, 4)
  np.testing.assert_allclose(np.linalg.norm(bank, axis=1), 1.0, rtol=1e-6)
  index = jnp.array([7, 2])
  values = jnp.array([[3.0, 0, 0, 0], [0, 0, 0, -2.0]])
  new = memory.bank_update(bank, index, values, momentum=0.5)
  untouched = np.setdiff1d(np.arange(10), index)
  np.testing.assert_array_equal(new[untouched], bank[untouched])
  for row, value in zip(np.asarray(index), np.asarray(values)):
    mixed = 0.5 * np.asarray(bank[row]) + 0.5 * value / np.linalg.norm(value)
    np.testing.assert_allclose(new[row], mixed / np.linalg.norm(mixed), rtol=1e-5)
  overwritten = memory.bank_update(bank, index, values, momentum=0.0)
  np.testing.assert_allclose(overwritten[7], [1, 0, 0, 0], atol=1e-6)


def test_sample_negatives_and_nearest_neighbours():
  bank = memory.init_bank(jax.random.key(1), 50, 3)
  negatives = memory.sample_negatives(jax.random.key(2), bank, 4, 7)
  assert negatives.shape == (4, 7, 3)
  rows = np.asarray(negatives).reshape(-1, 3)
  assert all(np.any(np.all(np.isclose(np.asarray(bank), r), axis=1)) for r in rows)
  support = jnp.array([[1.0, 0, 0], [0, 1.0, 0], [0.9, 0.1, 0], [0, 0, 1.0]])
  query = jnp.array([[10.0, 0.5, 0], [0, 0, -1.0]])
  nn = memory.nearest_neighbours(query, support, 2)
  np.testing.assert_array_equal(nn[0], [0, 2])
  assert int(nn[1, 0]) != 3  # the farthest row is never the nearest


def test_moco_key_encoder_gets_no_gradient_and_queue_gets_the_keys():
  from jssl.methods import Batch, TrainInfo, moco  # pylint: disable=g-import-not-at-top
  config = tiny_config('moco', image_size=8)
  config.moco.queue_size = 16
  method = moco.create(config, TrainInfo(num_examples=100, num_classes=10, image_channels=1,
                                         num_steps=10))
  images = jax.random.uniform(jax.random.key(0), (8, 8, 8, 1))
  params, batch_stats, extra = method.init(jax.random.key(1), images)
  batch = Batch(views=(images, images[::-1]), label=jnp.zeros(8, jnp.int32),
                index=jnp.arange(8))

  def loss_of_extra(extra):
    return method.loss(params, batch_stats, extra, batch, jnp.asarray(0), jax.random.key(2))[0]

  grads = jax.grad(loss_of_extra, allow_int=True)(extra)
  for leaf in jax.tree_util.tree_leaves(grads):
    if jnp.issubdtype(leaf.dtype, jnp.floating):
      np.testing.assert_array_equal(leaf, 0.0)
  _, out = method.loss(params, batch_stats, extra, batch, jnp.asarray(0), jax.random.key(2))
  assert int(out.extra['queue_pointer']) == 8
  np.testing.assert_array_equal(out.extra['queue'][8:], extra['queue'][8:])
  np.testing.assert_allclose(np.linalg.norm(out.extra['queue'][:8], axis=1), 1.0, rtol=1e-5)
  # The key encoder moved towards the query encoder by (1 - m) of the difference: at step 0
  # they are equal, so it must be unchanged.
  for a, b in zip(jax.tree_util.tree_leaves(out.extra['target']['params']),
                  jax.tree_util.tree_leaves({k: params[k] for k in ('encoder', 'projector')})):
    np.testing.assert_allclose(a, b, rtol=1e-6)
