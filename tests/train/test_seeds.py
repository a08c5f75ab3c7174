"""`train_seeds`: S seeds in one vmapped program equal S separate runs of the shared loop."""

import os

import jax
import numpy as np
import pytest
from tensorboard_check import assert_tensorboard_equals_metrics

from jssl.config import ConfigError
from jssl.config import load_config
from jssl.train.loop import Run
from jssl.train.seeds import SeedsRun
from jssl.train.seeds import train_seeds
from jssl.train.seeds import unstack

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEEDS = (3, 7)
STEPS = 3
# BYOL's online projector output bias has a zero gradient in exact arithmetic (the predictor's
# first BatchNorm removes any constant shift), so AdamW turns float noise of ~1e-9 into steps
# of +-learning rate whose sign differs between any two programs; not compared.
_NOISE_ONLY = {"['projector']['dense_out']['bias']"}


def _tiny(name='simclr'):
  config = load_config(os.path.join(REPO, 'experiments', 'configs', f'{name}.py'))
  config.model.widths = (4, 8)
  config.model.projection_hidden_dim = 16
  config.model.projection_dim = 8
  config.batch_size = 16
  config.num_steps = STEPS
  config.optimizer.warmup_steps = 1
  config.eval.linear_steps = 5
  config.eval.at_start = False
  return config


@pytest.mark.parametrize('name', ['byol'])  # the EMA target rides in the vmapped state too
def test_vmapped_seeds_equal_separate_runs(name, tmp_path):
  config = _tiny(name)
  runner = SeedsRun(config, SEEDS, str(tmp_path / 'vmapped'))
  vmapped_losses = np.stack([np.asarray(runner.advance()['loss']) for _ in range(STEPS)])
  for i, seed in enumerate(SEEDS):
    separate = config.copy_and_resolve_references()
    separate.seed = seed
    run = Run(separate, str(tmp_path / f'seed_{seed}'))
    losses = [float(run.advance(next(run.iterator))['loss']) for _ in range(STEPS)]
    np.testing.assert_allclose(vmapped_losses[:, i], losses, rtol=2e-5, atol=1e-6)
    got = jax.tree_util.tree_leaves_with_path(unstack(runner.state, i).params)
    want = jax.tree_util.tree_leaves(run.state.params)
    for (path, a), b in zip(got, want):
      if name == 'byol' and jax.tree_util.keystr(path) in _NOISE_ONLY:
        continue
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=jax.tree_util.keystr(path))
    run.iterator.close()
  # The seeds really differ (their own init, data order and augmentation).
  assert not np.allclose(vmapped_losses[:, 0], vmapped_losses[:, 1])
  runner.close()


def test_train_seeds_resumes_and_writes_each_seed(tmp_path):
  config = _tiny()
  config.checkpoint_every = 2
  workdir = str(tmp_path / 'seeds')
  results = train_seeds(config, SEEDS, workdir)
  assert len(results) == 2 and all(0 <= r['knn_top1'] <= 1 for r in results)
  for seed in SEEDS:
    with open(os.path.join(workdir, f'seed_{seed}', 'metrics.jsonl')) as f:
      steps = [line for line in f if '"loss"' in line]
    assert len(steps) == STEPS
    assert_tensorboard_equals_metrics(os.path.join(workdir, f'seed_{seed}'))
  # Finished: running again restores the final checkpoint and evaluates the same state.
  again = train_seeds(config, SEEDS, workdir)
  for a, b in zip(results, again):
    assert a['knn_top1'] == b['knn_top1'] and a['linear_top1'] == b['linear_top1']
  with pytest.raises(ConfigError, match='seeds'):
    train_seeds(config, (3, 8), workdir)  # a checkpoint of other seeds


def test_methods_with_epoch_hooks_are_refused(tmp_path):
  with pytest.raises(ConfigError, match='drop\n?.*--vmap_seeds|--vmap_seeds'):
    SeedsRun(_tiny('deepcluster'), SEEDS, str(tmp_path))
  with pytest.raises(ConfigError, match='distinct seeds'):
    SeedsRun(_tiny(), (1, 1), str(tmp_path))
