"""`metrics.jsonl` (one JSON object per line), its TensorBoard copy and the PNG plot of its curves."""

from __future__ import annotations

import glob
import json
import math
import numbers
import os
import time
from typing import Any

# TensorBoard event files go here, under the workdir: `tensorboard --logdir <workdir>` (or a
# parent of many workdirs) shows them.
TENSORBOARD_DIR = 'tensorboard'


class MetricsWriter:
  """Appends records to `<workdir>/metrics.jsonl` and to TensorBoard event files under
  `<workdir>/tensorboard/`, written by process 0 only.

  On resume from step s, records of steps > s (logged after the checkpoint the run resumes
  from) and evaluations at step s (the loop evaluates s again) are dropped, so the file of a
  resumed run equals the file of an uninterrupted one. The event files are then written anew
  from the records kept (`TensorBoardLog`), so TensorBoard shows each step once, whatever the
  number of resumes, and its scalars always equal metrics.jsonl's.
  """

  def __init__(self, workdir: str, *, resume_step: int, enabled: bool = True):
    self.path = os.path.join(workdir, 'metrics.jsonl')
    self._enabled = enabled
    if enabled:
      records = read_metrics(self.path)
      kept = [r for r in records
              if r['step'] < resume_step or (r['step'] == resume_step and 'knn_top1' not in r)]
      text = ''.join(json.dumps(r) + '\n' for r in kept)
      current = None
      if os.path.exists(self.path):
        with open(self.path) as f:
          current = f.read()
      if text != current:  # records to drop, or a line half-written by a kill
        # Atomic: a kill during the rewrite leaves the old file, never a truncated one.
        temporary = self.path + '.tmp'
        with open(temporary, 'w') as f:
          f.write(text)
        os.replace(temporary, self.path)
      self._tensorboard = TensorBoardLog(os.path.join(workdir, TENSORBOARD_DIR), kept)

  def write(self, record: dict[str, Any]) -> None:
    if self._enabled:
      record = {k: _plain(v) for k, v in record.items()}
      with open(self.path, 'a') as f:
        f.write(json.dumps(record) + '\n')
        f.flush()
      self._tensorboard.write(record)

  def close(self) -> None:
    if self._enabled:
      self._tensorboard.close()


def tensorboard_scalars(record: dict[str, Any]) -> dict[str, float]:
  """The values of a metrics record that TensorBoard shows: every number but `step`.

  Flags (`random_init: true`) and strings are left out: they are not curves.
  """
  return {k: float(v) for k, v in record.items()
          if k != 'step' and isinstance(v, numbers.Real) and not isinstance(v, bool)}


class TensorBoardLog:
  """Scalar event files of a run's metrics, one event per metrics record, flushed each time.

  Event files are append-only, so on every (re)start the directory's old event files are
  deleted and the records that metrics.jsonl keeps are written again into a new one: a
  resumed run's events equal an uninterrupted run's (wall times aside), with no step twice.
  The events are written synchronously with tensorboardX's protos and record writer (no
  TensorFlow, no background thread), so what metrics.jsonl holds after a kill, the event
  file holds too.
  """

  def __init__(self, directory: str, records: list[dict[str, Any]]):
    from tensorboardX import event_file_writer  # pylint: disable=g-import-not-at-top
    from tensorboardX.proto import event_pb2, summary_pb2  # pylint: disable=g-import-not-at-top
    self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
    os.makedirs(directory, exist_ok=True)
    for old in glob.glob(os.path.join(directory, 'events.out.tfevents.*')):
      os.remove(old)
    self._writer = event_file_writer.EventsWriter(os.path.join(directory, 'events'))
    for record in records:
      self._add(record)
    self._writer.flush()

  def _add(self, record: dict[str, Any]) -> None:
    scalars = tensorboard_scalars(record)
    if not scalars:
      return
    summary = self._summary_pb2.Summary(value=[
        self._summary_pb2.Summary.Value(tag=tag, simple_value=value)
        for tag, value in scalars.items()])
    self._writer.write_event(self._event_pb2.Event(
        wall_time=time.time(), step=int(record['step']), summary=summary))

  def write(self, record: dict[str, Any]) -> None:
    self._add(record)
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


def _plain(value: Any) -> Any:
  if hasattr(value, 'item'):
    value = value.item()
  return value


def read_metrics(path: str) -> list[dict[str, Any]]:
  """Records of a metrics.jsonl; a partly written last line (from a kill) is skipped."""
  if not os.path.exists(path):
    return []
  records = []
  with open(path) as f:
    for line in f:
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError:
        continue
  return records


def plot_metrics(metrics_path: str, out_path: str) -> None:
  """Saves a PNG: training loss, collapse diagnostics and evaluation accuracies vs the step."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  records = read_metrics(metrics_path)
  train = [r for r in records if 'loss' in r and math.isfinite(r['loss'])]
  evals = [r for r in records if 'knn_top1' in r]
  fig, (ax_loss, ax_collapse, ax_acc) = plt.subplots(1, 3, figsize=(16, 4))
  ax_loss.plot([r['step'] for r in train], [r['loss'] for r in train], lw=1)
  ax_loss.set(xlabel='step', ylabel='training loss', title='loss')
  # RankMe on its own axis (up to min(N, D)); the normalised-output std (0 when collapsed) on
  # a twin axis.
  if any('rankme' in r for r in train):
    ax_collapse.plot([r['step'] for r in train], [r.get('rankme') for r in train], lw=1,
                     label='rankme (outputs)')
    ax_collapse.plot([r['step'] for r in train], [r.get('rankme_features') for r in train],
                     lw=1, label='rankme (features)')
    ax_collapse.set(xlabel='step', ylabel='effective rank', title='collapse diagnostics')
    ax_collapse.legend(loc='upper left')
    ax_std = ax_collapse.twinx()
    ax_std.plot([r['step'] for r in train], [r.get('output_std') for r in train], lw=1,
                color='tab:red', label='output_std')
    ax_std.set(ylabel='std of normalised outputs')
    ax_std.legend(loc='upper right')
  else:
    ax_collapse.set_axis_off()
  for key in ('knn_top1', 'linear_top1', 'online_linear_top1'):
    points = [(r['step'], r[key]) for r in evals if key in r]
    if points:
      ax_acc.plot(*zip(*points), marker='o', label=key)
  ax_acc.set(xlabel='step', ylabel='top-1 accuracy (test split)', title='evaluation')
  if evals:
    ax_acc.legend()
  fig.tight_layout()
  fig.savefig(out_path, dpi=100)
  plt.close(fig)
