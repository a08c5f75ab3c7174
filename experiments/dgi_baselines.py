"""The DGI paper's two baselines beside DGI, on the same graph, split and probe.

  python experiments/dgi_baselines.py --variants=wordnet_nouns,polblogs,football --runs=runs

For each variant of experiments/configs/dgi.py, with the DGI run in `<runs>/dgi_<variant>`
(as `python -m jssl.main --config=experiments/configs/dgi.py:<variant>
--workdir=runs/dgi_<variant>` leaves it):
* raw features: logistic regression on the node features themselves (Velickovic et al.,
  Table 2, "Raw features"), fitted with the loop's probe (`jssl.eval.linear.linear_probe`:
  train-mask nodes, L2 chosen on validation, test reported) and the same kNN;
* random-init GCN: the probes on the untrained encoder's embeddings (the paper's "Random-Init"
  row). A run records them at step 0 (`random_init` in metrics.jsonl, `config.eval.at_start`);
  that record is used when it exists, otherwise they are computed here from the variant's
  config (same seed, so the same initial encoder);
* DGI: the run's last evaluation, when the run has finished.
Prints a markdown table, then the JSON of every number (also written to `--out` if given).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from jssl.config import load_config  # pylint: disable=g-import-not-at-top,wrong-import-position
from jssl.eval.evaluate import probe_splits  # pylint: disable=wrong-import-position
from jssl.eval.knn import knn_top1  # pylint: disable=wrong-import-position
from jssl.eval.linear import linear_probe  # pylint: disable=wrong-import-position
from jssl.train.metrics import read_metrics  # pylint: disable=wrong-import-position

CONFIG = os.path.join(REPO, 'experiments', 'configs', 'dgi.py')
METRICS = ('linear_top1', 'knn_top1', 'linear_val_top1', 'linear_l2')


def raw_feature_probes(dataset, eval_config, node_features=None) -> dict[str, float]:
  """kNN and the linear probe on the graph's node features (or on `node_features` [N, D],
  any embedding of every node), on the probe's splits."""
  node_features = dataset.graph.node_features if node_features is None else node_features
  splits = {}
  for name, source in probe_splits(dataset).items():
    features = np.asarray(node_features[source.node_ids], np.float32)
    splits[name] = (features, source.labels)
  (train_x, train_y), (val_x, val_y), (test_x, test_y) = (
      splits['train'], splits['validation'], splits['test'])
  return {
      'knn_top1': knn_top1(train_x, train_y, test_x, test_y, num_classes=dataset.num_classes,
                           k=eval_config.knn_k, temperature=eval_config.knn_temperature),
      **linear_probe(train_x, train_y, val_x, val_y, test_x, test_y,
                     num_classes=dataset.num_classes,
                     l2_grid=tuple(eval_config.linear_l2_grid),
                     num_steps=eval_config.linear_steps),
  }


def run_records(workdir: str) -> tuple[dict | None, dict | None]:
  """(the step-0 random-init evaluation, the last evaluation after training) of a run."""
  records = read_metrics(os.path.join(workdir, 'metrics.jsonl'))
  evaluations = [r for r in records if 'linear_top1' in r]
  random_init = next((r for r in evaluations if r.get('random_init')), None)
  trained = [r for r in evaluations if not r.get('random_init') and r['step'] > 0]
  return random_init, (trained[-1] if trained else None)


def random_init_probes(config) -> dict[str, float]:
  """The probes on the untrained encoder of `config` (what a run records at step 0)."""
  from jssl.train.loop import Run  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as workdir:
    run = Run(config, workdir)
    try:
      return run.evaluate()
    finally:
      run.iterator.close()


def compare(variant: str, runs: str) -> dict:
  """Every row of one graph: raw features, random-init GCN and DGI (None if not run yet)."""
  from jssl.train.loop import load_run_dataset  # pylint: disable=g-import-not-at-top
  config = load_config(f'{CONFIG}:{variant}')
  workdir = os.path.join(runs, f'dgi_{variant}')
  dataset = load_run_dataset(config)
  random_init, trained = run_records(workdir)
  random_source = f'{workdir}/metrics.jsonl (step 0)'
  if random_init is None:
    random_init, random_source = random_init_probes(config), f'computed ({variant} config)'
  pick = lambda r: None if r is None else {k: r[k] for k in METRICS if k in r}
  return {
      'graph': variant,
      'nodes': dataset.graph.num_nodes,
      'probe_nodes': {name: len(source) for name, source in probe_splits(dataset).items()},
      'raw_features': pick(raw_feature_probes(dataset, config.eval)),
      'random_init_gcn': pick(random_init),
      'random_init_source': random_source,
      'dgi': pick(trained),
      'dgi_step': None if trained is None else trained['step'],
  }


def markdown(rows: list[dict]) -> str:
  lines = ['| graph | features | linear_top1 | knn_top1 |', '|---|---|---|---|']
  for row in rows:
    for label, key in (('raw features', 'raw_features'), ('random-init GCN', 'random_init_gcn'),
                       ('DGI', 'dgi')):
      result = row[key]
      if key == 'dgi' and row['dgi_step'] is not None:
        label = f'DGI ({row["dgi_step"]} steps)'
      cells = (['not run yet', ''] if result is None else
               [f'{result["linear_top1"]:.4f}', f'{result["knn_top1"]:.4f}'])
      lines.append(f'| {row["graph"]} | {label} | {cells[0]} | {cells[1]} |')
  return '\n'.join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--variants', default='wordnet_nouns,polblogs,football',
                      help='comma-separated variants of experiments/configs/dgi.py')
  parser.add_argument('--runs', default='runs', help='directory holding dgi_<variant> workdirs')
  parser.add_argument('--out', default='', help='also write the JSON here')
  args = parser.parse_args(argv)
  rows = [compare(variant.strip(), args.runs) for variant in args.variants.split(',')
          if variant.strip()]
  print(markdown(rows))
  text = json.dumps(rows, indent=1, default=lambda x: float(x) if np.isscalar(x) else str(x))
  print(text)
  if args.out:
    with open(args.out, 'w') as f:
      f.write(text + '\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
