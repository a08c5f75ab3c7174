"""Weighted k-nearest-neighbour classification on frozen features (Wu et al. 2018, InstDisc).

Each query's k most cosine-similar training examples vote for their class with weight
exp(similarity / temperature); the class with the largest total is the prediction. k=200 and
temperature 0.07 are InstDisc's settings.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jssl.losses import l2_normalize


@functools.partial(jax.jit, static_argnames=('num_classes', 'k'))
def _predict_chunk(bank, bank_labels, queries, *, num_classes, k, temperature):
  similarity = queries @ bank.T  # [Q, N]
  top_sim, top_idx = jax.lax.top_k(similarity, k)  # [Q, k]
  weights = jnp.exp(top_sim / temperature)
  votes = jax.nn.one_hot(bank_labels[top_idx], num_classes) * weights[..., None]
  return jnp.argmax(votes.sum(axis=1), axis=-1)


def knn_predict(train_features, train_labels, query_features, *, num_classes: int, k: int = 200,
                temperature: float = 0.07, chunk_size: int = 1024) -> np.ndarray:
  """Predicts a class for each query.

  Args:
    train_features: [N, F] features of the labelled bank (the training split).
    train_labels: [N] int labels of the bank.
    query_features: [Q, F] features to classify.
    num_classes: number of classes C.
    k: neighbours per query (clipped to N).
    temperature: vote weight exp(cos / temperature).
    chunk_size: queries per device call (bounds the [chunk, N] similarity matrix).

  Returns:
    [Q] int32 NumPy array of predicted classes.
  """
  bank = l2_normalize(jnp.asarray(train_features, jnp.float32))
  queries = l2_normalize(jnp.asarray(query_features, jnp.float32))
  labels = jnp.asarray(train_labels, jnp.int32)
  k = min(int(k), bank.shape[0])
  predictions = []
  for start in range(0, queries.shape[0], chunk_size):
    chunk = queries[start:start + chunk_size]
    pad = chunk_size - chunk.shape[0]  # pad so every chunk compiles to the same shape
    chunk = jnp.pad(chunk, ((0, pad), (0, 0)))
    pred = _predict_chunk(bank, labels, chunk, num_classes=num_classes, k=k,
                          temperature=temperature)
    predictions.append(np.asarray(pred)[:chunk_size - pad])
  return np.concatenate(predictions).astype(np.int32)


def knn_top1(train_features, train_labels, test_features, test_labels, *, num_classes: int,
             k: int = 200, temperature: float = 0.07) -> float:
  """Top-1 accuracy of `knn_predict` on (test_features, test_labels)."""
  predictions = knn_predict(train_features, train_labels, test_features,
                            num_classes=num_classes, k=k, temperature=temperature)
  return float(np.mean(predictions == np.asarray(test_labels)))
