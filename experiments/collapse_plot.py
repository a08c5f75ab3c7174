"""Plots the collapse diagnostics of the ablation rows of the non-contrastive results table.

  python experiments/collapse_plot.py --workdir=runs/table/digits --out=docs/collapse_digits.png

Reads `<workdir>/<run>/metrics.jsonl` of each (method, ablation) pair written by
`experiments/results_table.py --family=noncontrastive` and draws, per step, the two measures the
papers use for collapse: SimSiam's `output_std` (mean per-dimension std of the L2-normalised
outputs; 0 when every output is the same, 1/sqrt(D) when spread) and RankMe, the effective rank
of the batch of outputs. One column per pair, the full method solid, its ablation dashed.
"""

from __future__ import annotations

import argparse
import os

from jssl.train.metrics import read_metrics

# (title, full run, ablation run)
PAIRS = (
    ('SimSiam: stop-gradient', 'simsiam', 'simsiam_no_stop_gradient'),
    ('BYOL: predictor', 'byol', 'byol_no_predictor'),
)
MEASURES = (('output_std', 'output std (normalised outputs)'), ('rankme', 'RankMe'))


def series(workdir: str, run: str, key: str) -> tuple[list[int], list[float]]:
  """(steps, values) of `key` over the training records of one run."""
  path = os.path.join(workdir, run, 'metrics.jsonl')
  if not os.path.exists(path):
    raise SystemExit(f'{path} does not exist: run experiments/results_table.py '
                     '--family=noncontrastive for this dataset first.')
  records = [r for r in read_metrics(path) if key in r]
  return [r['step'] for r in records], [r[key] for r in records]


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', default='runs/table/digits',
                      help='folder holding one sub-folder per run of the table')
  parser.add_argument('--out', default='docs/collapse_digits.png', help='PNG to write')
  args = parser.parse_args(argv)

  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(len(MEASURES), len(PAIRS), figsize=(5 * len(PAIRS), 6),
                           squeeze=False)
  for col, (title, full, ablation) in enumerate(PAIRS):
    for row, (key, label) in enumerate(MEASURES):
      ax = axes[row][col]
      for run, style in ((full, '-'), (ablation, '--')):
        ax.plot(*series(args.workdir, run, key), style, label=run)
      ax.set_xlabel('step')
      ax.set_ylabel(label)
      ax.set_ylim(bottom=0)
      if row == 0:
        ax.set_title(title)
        ax.legend()
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  fig.savefig(args.out, dpi=100)
  print(f'wrote {args.out}')


if __name__ == '__main__':
  main()
