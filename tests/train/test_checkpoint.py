"""Checkpoints: round trip, keep-last-N, and fallback from an unreadable newest one."""

import logging
import os

import jax
import jax.numpy as jnp
import numpy as np

from jssl.train.checkpoint import Checkpointer


def _state(value):
  return {'step': jnp.asarray(value, jnp.int32), 'w': jnp.full((3, 2), value, jnp.float32),
          'queue': {'ptr': jnp.asarray(value % 4, jnp.int32)}}


def _abstract(state):
  return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                                sharding=x.sharding), state)


def test_round_trip_and_keeps_the_last_few(tmp_path):
  ckpt = Checkpointer(str(tmp_path), max_to_keep=2)
  for step in (10, 20, 30):
    ckpt.save(step, _state(step), {'epoch': step, 'position': 1})
  assert ckpt.all_steps() == [20, 30]
  state, data_state, step = Checkpointer(str(tmp_path)).restore_latest(_abstract(_state(0)))
  assert step == 30 and data_state == {'epoch': 30, 'position': 1}
  np.testing.assert_array_equal(state['w'], np.full((3, 2), 30.0))
  assert int(state['queue']['ptr']) == 2


def test_empty_workdir_restores_nothing(tmp_path):
  assert Checkpointer(str(tmp_path)).restore_latest(_abstract(_state(0))) is None


def test_corrupt_newest_falls_back_to_previous_and_is_kept_aside(tmp_path, caplog):
  ckpt = Checkpointer(str(tmp_path), max_to_keep=3)
  for step in (1, 2):
    ckpt.save(step, _state(step), {'epoch': 0, 'position': step})
  newest = tmp_path / 'checkpoints' / '2'
  for root, _, files in os.walk(newest):  # scramble every file of the newest checkpoint
    for name in files:
      with open(os.path.join(root, name), 'wb') as f:
        f.write(b'\x00garbage')
  with caplog.at_level(logging.WARNING):
    state, data_state, step = Checkpointer(str(tmp_path)).restore_latest(_abstract(_state(0)))
  assert step == 1 and data_state['position'] == 1
  np.testing.assert_array_equal(state['w'], np.ones((3, 2)))
  assert 'step 2' in caplog.text and 'falling back' in caplog.text
  assert (tmp_path / 'corrupt_checkpoints' / '2').is_dir()  # nothing is deleted
  # Training goes on and can save step 2 again.
  resumed = Checkpointer(str(tmp_path))
  resumed.save(2, _state(22), {'epoch': 0, 'position': 2})
  assert resumed.all_steps() == [1, 2]
