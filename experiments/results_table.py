"""Trains every method of the README's results table under one budget and writes the table.

  python experiments/results_table.py --dataset=digits --workdir=runs/table
  python experiments/results_table.py --dataset=fashion_mnist --epochs=3 --workdir=runs/table
  python experiments/results_table.py --family=noncontrastive --dataset=digits --epochs=60

Each row is one `python -m jssl.main` run (printed before it starts, and listed in the output
file); a row whose run already finished is read from its metrics.jsonl, so an interrupted table
resumes where it stopped (an interrupted run resumes from its last checkpoint). The budget is
the same for every row: `--epochs` epochs at the batch size of the dataset's config, the same
encoder, optimizer and evaluation; rows differ only in their method's own settings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (label, run name, config file, extra overrides); every row runs `<config>.py:<dataset>`.
CONTRASTIVE = (
    ('SimCLR', 'simclr', 'simclr', ()),
    ('MoCo v2', 'moco', 'moco', ()),
    ('MoCo v1', 'moco_v1', 'moco', ('--config.model.projection_layers=1',
                                    '--config.moco.temperature=0.07')),
    ('MoCo v3', 'moco_v3', 'moco_v3', ()),
    ('InstDisc (NPID)', 'instdisc', 'instdisc', ()),
    ('NNCLR', 'nnclr', 'nnclr', ()),
    ('MeanShift', 'meanshift', 'meanshift', ()),
    ('PIRL', 'pirl', 'pirl', ()),
    ('CMC', 'cmc', 'cmc', ()),
    ('Triplet', 'triplet', 'triplet', ()),
    ('Margin contrastive', 'margin', 'triplet', ('--config.triplet.loss=margin_contrastive',)),
    ('SupCon (uses labels)', 'supcon', 'supcon', ()),
)

# Non-contrastive and clustering methods, with the classic collapse ablations.
NONCONTRASTIVE = (
    ('BYOL', 'byol', 'byol', ()),
    ('BYOL without predictor', 'byol_no_predictor', 'byol',
     ('--config.byol.predictor_hidden_dim=0',)),
    ('SimSiam', 'simsiam', 'simsiam', ()),
    ('SimSiam without stop-gradient', 'simsiam_no_stop_gradient', 'simsiam',
     ('--config.simsiam.stop_gradient=false',)),
    ('Barlow Twins', 'barlow_twins', 'barlow_twins', ()),
    ('VICReg', 'vicreg', 'vicreg', ()),
    ('SwAV', 'swav', 'swav', ()),
    ('DINO', 'dino', 'dino', ()),
    ('DeepCluster', 'deepcluster', 'deepcluster', ()),
    ('Local Aggregation', 'local_aggregation', 'local_aggregation', ()),
)

FAMILIES = {'contrastive': CONTRASTIVE, 'noncontrastive': NONCONTRASTIVE}


def last_diagnostics(workdir: str) -> str:
  """'output_std / rankme' of the last training step's record, or '–' if not logged."""
  path = os.path.join(workdir, 'metrics.jsonl')
  with open(path) as f:
    records = [json.loads(line) for line in f if line.strip()]
  last = next((r for r in reversed(records) if 'output_std' in r), None)
  return '–' if last is None else f'{last["output_std"]:.3f} / {last["rankme"]:.1f}'


def final_metrics(workdir: str) -> tuple[dict | None, dict | None]:
  """(random-init evaluation, final evaluation) from a run's metrics.jsonl, None if absent."""
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return None, None
  with open(path) as f:
    records = [json.loads(line) for line in f if line.strip()]
  evals = [r for r in records if 'knn_top1' in r]
  start = next((r for r in evals if r.get('random_init')), None)
  last_step = max((r['step'] for r in records if 'loss' in r), default=-1)
  end = next((r for r in evals if not r.get('random_init') and r['step'] == last_step), None)
  return start, end


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--dataset', default='digits', choices=('digits', 'fashion_mnist'))
  parser.add_argument('--epochs', type=int, default=None,
                      help='budget per run (default: the digits configs\' 120 epochs)')
  parser.add_argument('--workdir', default='runs/table')
  parser.add_argument('--family', default='contrastive', choices=sorted(FAMILIES),
                      help='which table: the contrastive methods, or the non-contrastive and '
                      'clustering ones with the collapse ablations')
  parser.add_argument('--only', default='', help='comma-separated run names (e.g. moco,moco_v1; default all)')
  parser.add_argument('--report_only', action='store_true',
                      help='train nothing; rows without a finished run are marked "not run"')
  parser.add_argument('--out', default=None, help='Markdown output (default <workdir>/<dataset>.md)')
  args = parser.parse_args()
  only = {s.strip() for s in args.only.split(',') if s.strip()}
  diagnostics = args.family != 'contrastive'
  header = '| method | knn_top1 | linear_top1 | random init: knn / linear |'
  header += ' output std / RankMe at the end |' if diagnostics else ''
  lines = [header + ' wall time |', '|---' * (6 if diagnostics else 5) + '|']
  commands, baseline = [], None
  for label, name, config, extra in FAMILIES[args.family]:
    if only and name not in only:
      continue
    workdir = os.path.join(args.workdir, args.dataset, name)
    command = [sys.executable, '-m', 'jssl.main',
               f'--config=experiments/configs/{config}.py:{args.dataset}',
               f'--workdir={workdir}', *extra,
               # The committed tables were made with nn.Conv, before the matmul convolutions
               # became the default (2026-12-01): pinned so that they reproduce exactly.
               '--config.model.small_cnn_matmul_convs=false']
    if args.epochs is not None:
      command.append(f'--config.num_epochs={args.epochs}')
    if commands and args.dataset != 'digits':
      # Evaluating each method's random initialisation costs a minute here; the first row's
      # stands for all (initial encoders differ by method only through their random draws).
      command.append('--config.eval.at_start=false')
    shown = ' '.join(['python'] + command[1:])
    commands.append(shown)
    start, end = final_metrics(workdir)
    elapsed = None
    if end is None and args.report_only:
      lines.append(f'| {label} | not run |' + ' |' * (4 if diagnostics else 3))
      continue
    if end is None:
      print(f'[{label}] {shown}', flush=True)
      tick = time.time()
      subprocess.run(command, cwd=REPO, check=True, stderr=subprocess.DEVNULL)
      elapsed = time.time() - tick
      with open(os.path.join(workdir, 'wall_seconds.txt'), 'w') as f:
        f.write(f'{elapsed:.0f}\n')
      start, end = final_metrics(workdir)
    elif os.path.exists(os.path.join(workdir, 'wall_seconds.txt')):
      with open(os.path.join(workdir, 'wall_seconds.txt')) as f:
        elapsed = float(f.read())
    if start is not None and baseline is None:
      baseline = start
    if not commands[:-1] and baseline is None:
      raise RuntimeError(f'{workdir} has no random-init evaluation (eval.at_start was off).')
    wall = f'{elapsed / 60:.1f} min' if elapsed is not None else '?'
    init = f'{start["knn_top1"]:.3f} / {start["linear_top1"]:.3f}' if start else 'see below'
    collapse = f' {last_diagnostics(workdir)} |' if diagnostics else ''
    lines.append(f'| {label} | {end["knn_top1"]:.3f} | {end["linear_top1"]:.3f} | {init} |'
                 f'{collapse} {wall} |')
    print(lines[-1], flush=True)
  if baseline is not None:
    first = FAMILIES[args.family][0][0]
    lines.append(f'| random init ({first}\'s initial encoder) | {baseline["knn_top1"]:.3f} | '
                 f'{baseline["linear_top1"]:.3f} |' + ' |' * (3 if diagnostics else 2))
  text = '\n'.join(lines) + '\n\nCommands (from the repository root):\n\n' + '\n'.join(
      f'    {c}' for c in commands) + '\n'
  suffix = '' if args.family == 'contrastive' else f'_{args.family}'
  out = args.out or os.path.join(args.workdir, f'{args.dataset}{suffix}.md')
  os.makedirs(os.path.dirname(out) or '.', exist_ok=True)
  with open(out, 'w') as f:
    f.write(text)
  print(text)


if __name__ == '__main__':
  main()
