"""Baselines of the graph autoencoder paper (Kipf & Welling 2016) beside GAE / VGAE, on the
same held-out edges and the same node probes.

  python experiments/gae_baselines.py --variants=polblogs,football --runs=runs

For each variant of experiments/configs/gae.py (split seed 0 unless --split_seed):
* spectral embedding: the eigenvectors of the training graph's normalised adjacency
  D^-1/2 A D^-1/2 with the `--dim` largest eigenvalues, each scaled by sqrt(|eigenvalue|), so
  that z_i . z_j is the rank-`dim` approximation of the normalised adjacency (the paper's
  "SC" baseline embeds the same way, by spectral decomposition of the graph without features);
* raw features: the node features themselves (their inner products for links; on graphs with
  identity features every pair scores 0, so they are left out);
* the runs' own records, when `<runs>/vgae_<variant>` and `<runs>/gae_<variant>` exist: the
  random-init encoder (step 0) and the trained model (last evaluation).
Link metrics: `jssl.eval.link_prediction.link_scores` (test pairs). Node probes: the loop's
(`experiments/dgi_baselines.raw_feature_probes`). Prints a markdown table and the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (REPO, os.path.join(REPO, 'experiments')):
  if path not in sys.path:
    sys.path.insert(0, path)

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
from scipy import sparse  # pylint: disable=wrong-import-position
from scipy.sparse import linalg  # pylint: disable=wrong-import-position

from dgi_baselines import raw_feature_probes  # pylint: disable=wrong-import-position
from dgi_baselines import run_records  # pylint: disable=wrong-import-position
from jssl.config import load_config  # pylint: disable=wrong-import-position
from jssl.data.graph import link_split  # pylint: disable=wrong-import-position
from jssl.eval.link_prediction import link_scores  # pylint: disable=wrong-import-position

CONFIG = os.path.join(REPO, 'experiments', 'configs', 'gae.py')
KEYS = ('link_auc', 'link_ap', 'linear_top1', 'knn_top1')


def spectral_embedding(num_nodes: int, senders: np.ndarray, receivers: np.ndarray,
                       dim: int) -> np.ndarray:
  """[N, dim]: top eigenvectors of D^-1/2 A D^-1/2 (isolated nodes get degree 1), each
  scaled by sqrt(|eigenvalue|)."""
  adjacency = sparse.coo_matrix((np.ones(len(senders)), (receivers, senders)),
                                shape=(num_nodes, num_nodes)).tocsr()
  degree = np.maximum(np.asarray(adjacency.sum(1)).ravel(), 1.0)
  scale = sparse.diags(1 / np.sqrt(degree))
  values, vectors = linalg.eigsh(scale @ adjacency @ scale, k=dim, which='LA',
                                 v0=np.ones(num_nodes))
  return vectors * np.sqrt(np.abs(values))[None, :]


def compare(variant: str, runs: str, split_seed: int, dim: int) -> dict:
  from jssl.train.loop import load_run_dataset  # pylint: disable=g-import-not-at-top
  config = load_config(f'{CONFIG}:{variant}')
  dataset = load_run_dataset(config)
  graph = dataset.graph
  split = link_split(graph, val_fraction=config.gae.val_fraction,
                     test_fraction=config.gae.test_fraction, seed=split_seed)
  keep = split.train_edge_mask
  rows = {}

  def embedding_row(z):
    links = link_scores(z, split.test_pos, split.test_neg)
    probes = raw_feature_probes(dataset, config.eval, z)
    return {'link_auc': links['auc'], 'link_ap': links['ap'],
            'linear_top1': probes['linear_top1'], 'knn_top1': probes['knn_top1']}

  rows['spectral'] = embedding_row(spectral_embedding(graph.num_nodes, graph.senders[keep],
                                                      graph.receivers[keep], dim))
  if 'identity' not in dataset.feature_kind:
    rows['raw features'] = embedding_row(graph.node_features)
  for model in ('gae', 'vgae'):
    workdir = os.path.join(runs, f'{model}_{variant}')
    if os.path.exists(os.path.join(workdir, 'metrics.jsonl')):
      random_init, trained = run_records(workdir)
      for label, record in ((f'{model.upper()} random init', random_init),
                            (model.upper(), trained)):
        if record is not None:
          rows[label] = {k: record.get(k) for k in KEYS}
  return {'graph': variant, 'split_seed': split_seed, 'rows': rows}


def markdown(results: list[dict]) -> str:
  lines = ['| graph | embedding | link_auc | link_ap | linear_top1 | knn_top1 |',
           '|---|---|---|---|---|---|']
  for result in results:
    for label, row in result['rows'].items():
      cells = ['' if row.get(k) is None else f'{row[k]:.3f}' for k in KEYS]
      lines.append(f'| {result["graph"]} | {label} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--variants', default='polblogs,football')
  parser.add_argument('--runs', default='runs', help='holds gae_<variant> / vgae_<variant>')
  parser.add_argument('--split_seed', type=int, default=0)
  parser.add_argument('--dim', type=int, default=16, help='spectral embedding width')
  parser.add_argument('--out', default='')
  args = parser.parse_args(argv)
  results = [compare(v.strip(), args.runs, args.split_seed, args.dim)
             for v in args.variants.split(',') if v.strip()]
  print(markdown(results))
  text = json.dumps(results, indent=1)
  print(text)
  if args.out:
    with open(args.out, 'w') as f:
      f.write(text + '\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
