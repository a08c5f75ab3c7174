"""The loop's `Method.epoch_start` hook: when it runs, what it sees, and exact resumption."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl import methods
from jssl.config import load_config
from jssl.eval import evaluate as evaluation
from jssl.methods import simclr
from jssl.train import loop

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _create_recording_simclr(config, info):
  """SimCLR whose extra records every epoch_start call."""
  base = simclr.create(config, info)

  def init(rng, images):
    params, batch_stats, _ = base.init(rng, images)
    return params, batch_stats, {
        'calls': jnp.zeros((), jnp.int32), 'last_epoch': jnp.full((), -1, jnp.int32),
        'feature_sum': jnp.zeros((info.num_examples,), jnp.float32),
        'draw': jnp.zeros((), jnp.float32)}

  def loss(params, batch_stats, extra, batch, step, rng):
    value, out = base.loss(params, batch_stats, {}, batch, step, rng)
    return value, out._replace(extra=extra)

  def epoch_start(params, opt_state, extra, features, epoch, rng):
    return params, opt_state, {'calls': extra['calls'] + 1, 'last_epoch': epoch,
                               'feature_sum': jnp.sum(features, axis=-1),
                               'draw': jax.random.uniform(rng)}

  return base._replace(init=init, loss=loss, epoch_start=epoch_start)


@pytest.fixture
def recording(monkeypatch):
  monkeypatch.setitem(methods.METHODS, 'simclr', _create_recording_simclr)
  config = load_config(os.path.join(REPO, 'experiments', 'configs', 'simclr.py'))
  config.dataset.image_size = 8
  config.model.widths = (4, 8)
  config.model.projection_hidden_dim = 16
  config.model.projection_dim = 8
  config.batch_size = 256  # 1259 training digits: 4 steps per epoch
  config.optimizer.warmup_steps = 1
  config.eval.at_start = False
  config.eval.batch_size = 256
  config.eval.linear_steps = 3
  config.eval.linear_l2_grid = (1e-4,)
  return config


def _extra(workdir, config):
  run = loop.Run(config, workdir)
  run.iterator.close()
  abstract = jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), run.state)
  from jssl.train.checkpoint import Checkpointer  # pylint: disable=g-import-not-at-top
  checkpointer = Checkpointer(workdir)
  state, _, _ = checkpointer.restore_latest(abstract)
  checkpointer.close()
  return jax.device_get(state.extra)


def test_hook_runs_before_each_epoch_and_sees_every_training_example(recording):
  run = loop.Run(recording, '/tmp/unused')
  try:
    assert run.iterator.steps_per_epoch == 4
    run.start_epoch(0)
    features, _, _ = evaluation.extract(run.feature_fn, run.state, run.dataset.train,
                                        batch_size=256, mesh=run.mesh)
    extra = jax.device_get(run.state.extra)
    assert features.shape[0] == len(run.dataset.train) == 1259
    np.testing.assert_allclose(extra['feature_sum'], features.sum(-1), rtol=1e-5, atol=1e-5)
    for step in range(9):
      run.advance(next(run.iterator), step if step % 2 else None)
    extra = jax.device_get(run.state.extra)
    # start_epoch(0) by hand, then the loop's calls before steps 0, 4 and 8.
    assert int(extra['calls']) == 4 and int(extra['last_epoch']) == 2
  finally:
    run.iterator.close()


def test_epoch_features_false_skips_encoding_and_passes_none(recording, monkeypatch):
  def create(config, info):
    method = _create_recording_simclr(config, info)

    def epoch_start(params, opt_state, extra, features, epoch, rng):
      if features is None:  # a Python-level branch: jit traces each case once
        return params, opt_state, {**extra, 'calls': extra['calls'] + 1, 'last_epoch': epoch}
      return method.epoch_start(params, opt_state, extra, features, epoch, rng)

    return method._replace(epoch_start=epoch_start, epoch_features=lambda epoch: epoch % 2 == 0)

  monkeypatch.setitem(methods.METHODS, 'simclr', create)
  extracted = []
  real_extract = evaluation.extract
  monkeypatch.setattr(evaluation, 'extract',
                      lambda *a, **k: extracted.append(1) or real_extract(*a, **k))
  run = loop.Run(recording, '/tmp/unused')
  try:
    run.start_epoch(0)
    with_features = jax.device_get(run.state.extra)
    assert len(extracted) == 1 and np.any(with_features['feature_sum'] != 0)
    run.start_epoch(1)
    extra = jax.device_get(run.state.extra)
    assert len(extracted) == 1  # epoch 1: no pass over the training split
    assert int(extra['calls']) == 2 and int(extra['last_epoch']) == 1
    np.testing.assert_array_equal(extra['feature_sum'], with_features['feature_sum'])
  finally:
    run.iterator.close()


def test_resuming_at_an_epoch_boundary_repeats_the_hook_exactly(recording, tmp_path):
  recording.num_steps = 9
  recording.checkpoint_every = 4
  loop.train_and_evaluate(recording, str(tmp_path / 'whole'), progress=False)
  whole = _extra(str(tmp_path / 'whole'), recording)
  assert int(whole['calls']) == 3 and int(whole['last_epoch']) == 2

  # The same run, stopped after the checkpoint at step 4 (before epoch 1's hook) and resumed.
  os.makedirs(tmp_path / 'resumed')
  short = recording.copy_and_resolve_references()
  short.num_steps = 4  # the same schedule is not needed: only the hook's record is compared
  loop.train_and_evaluate(short, str(tmp_path / 'resumed'), progress=False)
  assert int(_extra(str(tmp_path / 'resumed'), recording)['calls']) == 1
  loop.train_and_evaluate(recording, str(tmp_path / 'resumed'), progress=False)
  resumed = _extra(str(tmp_path / 'resumed'), recording)
  assert int(resumed['calls']) == 3 and int(resumed['last_epoch']) == 2
  assert float(resumed['draw']) == float(whole['draw'])  # the key depends on the epoch only
