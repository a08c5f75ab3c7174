"""The Fréchet distance over training of the GAN stability sweep (gan_stability.sh): one line
per point (mean over seeds, the band their min..max), and a markdown table of it by step.

  python experiments/ablations/gan_stability_plot.py --workdir=runs/ablations/gan_stability \
      --out=experiments/ablations/gan_stability
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

import matplotlib  # pylint: disable=g-import-not-at-top,wrong-import-position

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from jssl.train.metrics import read_metrics  # pylint: disable=wrong-import-position

METRIC = 'frechet_distance'


def curves(workdir: str) -> dict[str, dict[int, list[float]]]:
  """{point: {step: [the metric of each seed]}} from every run's evaluations."""
  out = {}
  for point in sorted(glob.glob(os.path.join(workdir, '*', ''))):
    name = os.path.basename(os.path.dirname(point))
    by_step = {}
    for seed_dir in sorted(glob.glob(os.path.join(point, 'seed_*'))):
      for record in read_metrics(os.path.join(seed_dir, 'metrics.jsonl')):
        if METRIC in record:
          by_step.setdefault(int(record['step']), []).append(float(record[METRIC]))
    if by_step:
      out[name] = by_step
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--out', required=True, help='directory for the plot and the table')
  args = parser.parse_args(argv)
  data = curves(args.workdir)
  if not data:
    raise SystemExit(f'no {METRIC} records under {args.workdir}')
  os.makedirs(args.out, exist_ok=True)
  steps = sorted({s for by_step in data.values() for s in by_step})
  figure, axis = plt.subplots(figsize=(6, 4))
  lines = ['| point | ' + ' | '.join(f'step {s}' for s in steps) + ' |',
           '|---|' + '---|' * len(steps)]
  for name, by_step in data.items():
    xs = [s for s in steps if s in by_step]
    values = [np.asarray(by_step[s]) for s in xs]
    mean = np.asarray([v.mean() for v in values])
    axis.plot(xs, mean, marker='o', label=name)
    axis.fill_between(xs, [v.min() for v in values], [v.max() for v in values], alpha=0.15)
    cells = [f'{np.mean(by_step[s]):.2f} ± {np.std(by_step[s], ddof=1):.2f}'
             if len(by_step.get(s, [])) > 1 else '' for s in steps]
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  axis.set_yscale('log')
  axis.set_xlabel('step')
  axis.set_ylabel(f'{METRIC} (mean over seeds; band: min..max)')
  axis.legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(os.path.join(args.out, 'frechet_over_training.png'), dpi=120)
  table = '\n'.join(lines) + '\n'
  with open(os.path.join(args.out, 'frechet_over_training.md'), 'w') as f:
    f.write(table)
  print(table)
  return 0


if __name__ == '__main__':
  sys.exit(main())
