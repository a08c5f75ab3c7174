"""Fine-tuning protocols: class-balanced subsets, the protocol on a tiny SimCLR run, bad
settings refused before training."""

import os

import jax
import numpy as np
import pytest

from jssl.config import ConfigError
from jssl.config import load_config
from jssl.eval import finetune
from jssl.train.loop import Run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_balanced_subset_takes_each_class_in_proportion_and_is_fixed_by_seed():
  labels = np.repeat(np.arange(4), [100, 200, 50, 7])
  subset = finetune.balanced_subset(labels, 0.1, seed=3)
  counts = np.bincount(labels[subset], minlength=4)
  np.testing.assert_array_equal(counts, [10, 20, 5, 1])  # at least one of every class
  assert np.array_equal(subset, finetune.balanced_subset(labels, 0.1, seed=3))
  assert not np.array_equal(subset, finetune.balanced_subset(labels, 0.1, seed=4))
  assert len(set(subset)) == subset.size
  np.testing.assert_array_equal(finetune.balanced_subset(labels, 1.0, 0), np.arange(357))


def _config():
  config = load_config(os.path.join(REPO, 'experiments', 'configs', 'simclr.py'))
  config.model.widths = (4, 8)
  config.model.projection_hidden_dim = 16
  config.model.projection_dim = 8
  config.dataset.image_size = 8
  config.batch_size = 16
  config.num_steps = 2
  config.eval.batch_size = 128
  config.eval.finetune = ('semi_10pct',)
  config.eval.finetune_steps = 8
  config.eval.finetune_batch_size = 32
  return config


def test_semi_supervised_protocol_on_a_tiny_run(tmp_path):
  run = Run(_config(), str(tmp_path), devices=jax.devices()[:1])
  before = jax.device_get(run.state.params['encoder'])
  first = finetune.finetune_protocol(run, 'semi_10pct')
  assert set(first) == {'semi_10pct_top1', 'semi_10pct_val_top1', 'semi_10pct_examples'}
  assert 0 <= first['semi_10pct_top1'] <= 1 and 0 <= first['semi_10pct_val_top1'] <= 1
  n = len(run.dataset.train)
  assert 0.09 * n <= first['semi_10pct_examples'] <= 0.11 * n
  # The run's own state is untouched (the protocol works on a copy) and it is deterministic.
  after = jax.device_get(run.state.params['encoder'])
  for x, y in zip(jax.tree_util.tree_leaves(before), jax.tree_util.tree_leaves(after)):
    np.testing.assert_array_equal(x, y)
  assert finetune.finetune_protocol(run, 'semi_10pct') == first
  results = run.evaluate()  # the loop's evaluation runs the configured protocols
  assert results['semi_10pct_top1'] == first['semi_10pct_top1']
  assert 'linear_top1' in results
  run.iterator.close()


@pytest.mark.parametrize('field, value, match', [
    ('finetune', ('semi_5pct',), 'unknown'),
    ('finetune_batch_size', 12, 'multiple of the number of devices'),
    ('finetune_steps', 0, '>= 1'),
])
def test_bad_protocol_settings_are_refused(tmp_path, field, value, match):
  config = _config()
  config.eval[field] = value
  with pytest.raises(ConfigError, match=match):
    Run(config, str(tmp_path))
