"""Reads a workdir's TensorBoard event files back with TensorBoard's own reader."""

import glob
import os

import numpy as np

from jssl.train.metrics import read_metrics
from jssl.train.metrics import tensorboard_scalars


def tensorboard_series(workdir):
  """{tag: [(step, value)]} as TensorBoard loads it from `<workdir>/tensorboard/`."""
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  directory = os.path.join(workdir, 'tensorboard')
  files = glob.glob(os.path.join(directory, 'events.out.tfevents.*'))
  assert len(files) == 1, files  # one file, rewritten on resume: no step twice
  accumulator = event_accumulator.EventAccumulator(directory, size_guidance={'scalars': 0})
  accumulator.Reload()
  return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
          for tag in accumulator.Tags()['scalars']}


def assert_tensorboard_equals_metrics(workdir):
  """Every number of metrics.jsonl (but `step`) is in TensorBoard at its step, in order,
  as float32, and TensorBoard holds nothing else."""
  expected = {}
  for record in read_metrics(os.path.join(workdir, 'metrics.jsonl')):
    for tag, value in tensorboard_scalars(record).items():
      expected.setdefault(tag, []).append((record['step'], value))
  assert expected, 'metrics.jsonl holds no scalar'
  loaded = tensorboard_series(workdir)
  assert sorted(loaded) == sorted(expected)
  for tag, series in expected.items():
    assert [s for s, _ in loaded[tag]] == [s for s, _ in series], tag
    np.testing.assert_array_equal(np.float32([v for _, v in loaded[tag]]),
                                  np.float32([v for _, v in series]), err_msg=tag)
