"""TensorBoard event files: a copy of metrics.jsonl, written anew on resume."""

import json
import math
import os

from tensorboard_check import assert_tensorboard_equals_metrics
from tensorboard_check import tensorboard_series

from jssl.train.metrics import MetricsWriter


def _train(writer, steps):
  for step in steps:
    writer.write({'step': step, 'loss': 1.0 / step, 'lr': 0.1 * step, 'nonfinite': math.nan})


def test_events_equal_metrics_and_a_resume_drops_the_steps_after_its_checkpoint(tmp_path):
  workdir = str(tmp_path)
  writer = MetricsWriter(workdir, resume_step=0)
  writer.write({'step': 0, 'random_init': True, 'knn_top1': 0.25, 'note': 'text'})
  _train(writer, range(1, 8))
  writer.write({'step': 4, 'knn_top1': 0.5})  # an evaluation written late: kept in order
  assert_tensorboard_equals_metrics(workdir)
  assert tensorboard_series(workdir)['knn_top1'] == [(0, 0.25), (4, 0.5)]
  assert 'random_init' not in tensorboard_series(workdir)  # a flag, not a curve
  # Killed at step 7 without a close; resumed from the checkpoint at step 4.
  writer = MetricsWriter(workdir, resume_step=4)
  _train(writer, range(5, 10))
  writer.write({'step': 9, 'knn_top1': 0.75})
  writer.close()
  assert_tensorboard_equals_metrics(workdir)
  series = tensorboard_series(workdir)
  assert [s for s, _ in series['loss']] == list(range(1, 10))  # steps 5-7 once, not twice
  assert series['knn_top1'] == [(0, 0.25), (9, 0.75)]  # step 4's evaluation is made again
  assert all(math.isnan(v) for _, v in series['nonfinite'])


def test_process_other_than_zero_writes_nothing(tmp_path):
  writer = MetricsWriter(str(tmp_path), resume_step=0, enabled=False)
  writer.write({'step': 1, 'loss': 1.0})
  writer.close()
  assert not os.listdir(tmp_path)


def test_resume_rewrites_events_from_what_metrics_jsonl_keeps(tmp_path):
  """A kill between the two writes of a record (jsonl first) leaves TensorBoard one record
  short; the resume writes it from metrics.jsonl."""
  workdir = str(tmp_path)
  _train(MetricsWriter(workdir, resume_step=0), range(1, 4))
  with open(os.path.join(workdir, 'metrics.jsonl'), 'a') as f:
    f.write(json.dumps({'step': 4, 'loss': 0.25}) + '\n')
  MetricsWriter(workdir, resume_step=4)
  assert [s for s, _ in tensorboard_series(workdir)['loss']] == [1, 2, 3, 4]
  assert_tensorboard_equals_metrics(workdir)
