"""Weighted kNN against a per-query loop."""

import numpy as np
import pytest

from jssl.eval import knn_predict, knn_top1


def naive_knn(bank, bank_labels, queries, num_classes, k, temperature):
  bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
  queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  predictions = []
  for q in queries:
    sims = bank @ q
    nearest = np.argsort(-sims, kind='stable')[:k]
    votes = np.zeros(num_classes)
    for i in nearest:
      votes[bank_labels[i]] += np.exp(sims[i] / temperature)
    predictions.append(int(np.argmax(votes)))
  return np.array(predictions)


@pytest.mark.parametrize('k,temperature', [(1, 0.07), (5, 0.5), (200, 0.07)])
def test_matches_naive_loop(k, temperature):
  rng = np.random.default_rng(k)
  bank = rng.normal(size=(300, 6)).astype(np.float32)
  labels = rng.integers(0, 4, size=300)
  queries = rng.normal(size=(50, 6)).astype(np.float32)
  got = knn_predict(bank, labels, queries, num_classes=4, k=k, temperature=temperature,
                    chunk_size=16)  # several chunks, the last one padded
  np.testing.assert_array_equal(got, naive_knn(bank, labels, queries, 4, min(k, 300), temperature))


def test_separable_clusters_are_classified_perfectly_and_random_labels_are_not():
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(3, 8)) * 5
  labels = rng.integers(0, 3, size=200)
  bank = centres[labels] + rng.normal(size=(200, 8)) * 0.1
  test_labels = rng.integers(0, 3, size=40)
  test = centres[test_labels] + rng.normal(size=(40, 8)) * 0.1
  assert knn_top1(bank, labels, test, test_labels, num_classes=3, k=20) == 1.0
  shuffled = rng.permutation(labels)
  assert knn_top1(bank, shuffled, test, test_labels, num_classes=3, k=20) < 0.8
