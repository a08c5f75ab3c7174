"""`metrics.jsonl` (one JSON object per line) and the PNG plot of its curves."""

from __future__ import annotations

import json
import math
import os
from typing import Any


class MetricsWriter:
  """Appends records to `<workdir>/metrics.jsonl`, written by process 0 only.

  On resume from step s, records of steps > s (logged after the checkpoint the run resumes
  from) and evaluations at step s (the loop evaluates s again) are dropped, so the file of a
  resumed run equals the file of an uninterrupted one.
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

  def write(self, record: dict[str, Any]) -> None:
    if self._enabled:
      with open(self.path, 'a') as f:
        f.write(json.dumps({k: _plain(v) for k, v in record.items()}) + '\n')
        f.flush()


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
