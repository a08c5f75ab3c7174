"""The workdir's run record (`jssl.train.workdir`) and the checkpoint quarantine policy.

The CLI path (a changed config refused with the workdir untouched, a truncated checkpoint set
aside) is in tests/test_main.py; these are the rules themselves, on tiny states.
"""

import json
import os

import jax
import jax.numpy as jnp
import pytest

from jssl.config import ConfigError
from jssl.config import load_config
from jssl.train import workdir as workdir_lib
from jssl.train.checkpoint import Checkpointer
from jssl.train.checkpoint import UnreadableCheckpointError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STATE = {'params': {'kernel': jnp.zeros((3, 4))}, 'step': jnp.zeros((), jnp.int32)}


def _config():
  return load_config(os.path.join(REPO, 'experiments', 'configs', 'moco.py'))


def test_a_workdir_without_a_record_accepts_any_config(tmp_path):
  assert workdir_lib.check_config(_config(), str(tmp_path)) is None
  workdir_lib.check_state(None, STATE, str(tmp_path))


def test_same_config_and_resumable_fields_are_accepted(tmp_path):
  config = _config()
  workdir_lib.write_record(config, str(tmp_path), STATE)
  again = _config()
  again.num_steps = 5000
  again.log_every = 7
  again.eval.knn_k = 20
  again.dataset.data_dir = '/elsewhere'
  record = workdir_lib.check_config(again, str(tmp_path))
  assert record['config']['model.projection_dim'] == config.model.projection_dim
  workdir_lib.check_state(record, STATE, str(tmp_path))


@pytest.mark.parametrize('field,value', [
    ('model.projection_dim', 32), ('moco.queue_size', 512), ('batch_size', 128), ('seed', 1),
    ('dataset.name', 'fashion_mnist'), ('optimizer.base_learning_rate', 0.1),
    ('augment.preset', 'simclr'), ('dataset.image_size', 8)])
def test_a_field_that_shapes_the_state_or_the_data_is_refused(tmp_path, field, value):
  config = _config()
  workdir_lib.write_record(config, str(tmp_path), STATE)
  before = open(workdir_lib.record_path(str(tmp_path))).read()
  changed = _config()
  section, _, name = field.rpartition('.')
  old = (changed[section] if section else changed)[name]
  (changed[section] if section else changed)[name] = value
  with pytest.raises(workdir_lib.WorkdirMismatchError) as error:
    workdir_lib.check_config(changed, str(tmp_path))
  assert isinstance(error.value, ConfigError)  # the CLI exits 2 with the message
  assert f'  {field}: {json.dumps(old)} -> {json.dumps(value)}' in str(error.value)
  assert str(tmp_path) in str(error.value) and 'new --workdir' in str(error.value)
  assert open(workdir_lib.record_path(str(tmp_path))).read() == before


def test_a_different_state_shape_is_refused(tmp_path):
  workdir_lib.write_record(_config(), str(tmp_path), STATE)
  record = workdir_lib.check_config(_config(), str(tmp_path))
  wider = {'params': {'kernel': jnp.zeros((3, 5))}, 'step': jnp.zeros((), jnp.int32)}
  with pytest.raises(workdir_lib.WorkdirMismatchError,
                     match=r"state\['params'\]\['kernel'\]: \[\[3, 4\], \"float32\"\] -> "
                           r"\[\[3, 5\], \"float32\"\]"):
    workdir_lib.check_state(record, wider, str(tmp_path))


def test_an_unreadable_record_is_a_clear_error(tmp_path):
  with open(workdir_lib.record_path(str(tmp_path)), 'w') as f:
    f.write('{"config": ')
  with pytest.raises(workdir_lib.WorkdirMismatchError, match='cannot be read'):
    workdir_lib.check_config(_config(), str(tmp_path))


def _abstract(state):
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state)


# A failed restore leaves orbax's read coroutines behind; they must not print tracebacks
# ("Event loop is closed") when collected.
@pytest.mark.filterwarnings('error::pytest.PytestUnraisableExceptionWarning')
def test_a_failing_restore_moves_nothing_without_a_record(tmp_path):
  checkpointer = Checkpointer(str(tmp_path))
  checkpointer.save(3, STATE, {'position': 0})
  wider = {'params': {'kernel': jnp.zeros((3, 5))}, 'step': jnp.zeros((), jnp.int32)}
  with pytest.raises(UnreadableCheckpointError, match='Nothing was moved'):
    checkpointer.restore_latest(_abstract(wider), quarantine=False)
  assert checkpointer.all_steps() == [3]
  assert not os.path.exists(tmp_path / 'corrupt_checkpoints')
  state, data_state, step = checkpointer.restore_latest(_abstract(STATE), quarantine=False)
  assert step == 3 and data_state == {'position': 0}
  assert state['params']['kernel'].shape == (3, 4)
  checkpointer.close()


@pytest.mark.filterwarnings('error::pytest.PytestUnraisableExceptionWarning')
def test_an_unreadable_checkpoint_is_set_aside_and_the_previous_one_restored(tmp_path):
  checkpointer = Checkpointer(str(tmp_path))
  checkpointer.save(3, STATE, {'position': 3})
  newer = {'params': {'kernel': jnp.ones((3, 4))}, 'step': jnp.ones((), jnp.int32)}
  checkpointer.save(6, newer, {'position': 6})
  data_files = [os.path.join(root, name)
                for root, _, names in os.walk(tmp_path / 'checkpoints' / '6' / 'state')
                for name in names if os.sep + 'd' + os.sep in os.path.join(root, name)]
  assert data_files
  for path in data_files:  # the array data cut short, the metadata intact
    os.truncate(path, os.path.getsize(path) // 2)
  state, data_state, step = checkpointer.restore_latest(_abstract(STATE))
  assert step == 3 and data_state == {'position': 3}
  assert float(state['params']['kernel'].sum()) == 0.0
  assert os.path.isdir(tmp_path / 'corrupt_checkpoints' / '6')
  assert checkpointer.all_steps() == [3]
  checkpointer.close()
