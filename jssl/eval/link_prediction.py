"""Link prediction metrics of node embeddings: ROC AUC and average precision of the
inner-product scores of held-out edges against non-edges (Kipf & Welling 2016's protocol).

Host-side NumPy on the gathered embeddings: a few thousand pairs, no device program.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics


def link_scores(embeddings: np.ndarray, pos_pairs: np.ndarray,
                neg_pairs: np.ndarray) -> dict[str, float]:
  """{'auc', 'ap'} of the scores z_i . z_j, edges labelled 1 and non-edges 0.

  Args:
    embeddings: [N, D] node embeddings z.
    pos_pairs: [K, 2] node pairs that are (held-out) edges.
    neg_pairs: [M, 2] node pairs that are not edges.

  Returns:
    'auc': the probability that a random edge scores above a random non-edge (ties count
      half), sklearn's `roc_auc_score`; 'ap': sklearn's `average_precision_score` (the mean of
      the precision at each edge's rank).

  Raises:
    ValueError: no pairs on one side, or pairs outside [0, N).
  """
  embeddings = np.asarray(embeddings, np.float64)
  pos_pairs, neg_pairs = np.asarray(pos_pairs), np.asarray(neg_pairs)
  if not len(pos_pairs) or not len(neg_pairs):
    raise ValueError(f'link_scores needs edges and non-edges; got {len(pos_pairs)} and '
                     f'{len(neg_pairs)} pairs.')
  pairs = np.concatenate([pos_pairs, neg_pairs]).reshape(-1, 2)
  if pairs.min() < 0 or pairs.max() >= embeddings.shape[0]:
    raise ValueError(f'link_scores: node ids must be in [0, {embeddings.shape[0]}); got '
                     f'{pairs.min()}..{pairs.max()}.')
  scores = np.sum(embeddings[pairs[:, 0]] * embeddings[pairs[:, 1]], axis=-1)
  labels = np.concatenate([np.ones(len(pos_pairs)), np.zeros(len(neg_pairs))])
  return {'auc': float(metrics.roc_auc_score(labels, scores)),
          'ap': float(metrics.average_precision_score(labels, scores))}
