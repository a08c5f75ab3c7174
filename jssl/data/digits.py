"""The scikit-learn digits: 1,797 labelled 8x8 grey images, shipped inside scikit-learn.

Small enough to pre-train and probe on a laptop CPU in seconds, which makes it the dataset of
the smoke tests and of the notebooks. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from jssl.data.base import ArraySource, Dataset

NUM_CLASSES = 10
# Fractions of every class that go to validation and test; the rest is train.
VALIDATION_FRACTION = 0.1
TEST_FRACTION = 0.2
# The split is part of the dataset, not of a run: it never depends on a run's seed.
_SPLIT_SEED = 0


def split_indices(labels: np.ndarray, *, validation_fraction: float, test_fraction: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """A stratified train / validation / test split of example indices.

  Each class, in increasing label order, is permuted by one `np.random.RandomState(seed)`;
  its first round(test_fraction * n) examples go to test, the next
  round(validation_fraction * n) to validation and the rest to train.

  Args:
    labels: int [N], the class of every example.
    validation_fraction: fraction of each class held out for validation.
    test_fraction: fraction of each class held out for test.
    seed: seed of the permutation.

  Returns:
    (train, validation, test): sorted int64 index arrays that together cover range(N) once.
  """
  rng = np.random.RandomState(seed)
  train, validation, test = [], [], []
  for label in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == label))
    n_test = int(round(test_fraction * members.size))
    n_validation = int(round(validation_fraction * members.size))
    test.append(members[:n_test])
    validation.append(members[n_test:n_test + n_validation])
    train.append(members[n_test + n_validation:])
  return tuple(np.sort(np.concatenate(part)).astype(np.int64)
               for part in (train, validation, test))


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
  """(float64 [1797, 8, 8] pixels in 0..16, int32 [1797] labels) from scikit-learn's wheel.

  Reads the CSV that `sklearn.datasets.load_digits` reads (`datasets/data/digits.csv.gz`, one
  row per image: 64 pixels then the label) without importing scikit-learn, whose import takes
  ~2 s: every CLI run on digits paid it. Falls back to `load_digits` if the file has moved.
  """
  spec = importlib.util.find_spec('sklearn')
  locations = list(spec.submodule_search_locations or ()) if spec else []
  for location in locations:
    path = os.path.join(location, 'datasets', 'data', 'digits.csv.gz')
    if os.path.isfile(path):
      rows = np.loadtxt(path, delimiter=',')
      return rows[:, :-1].reshape(-1, 8, 8), rows[:, -1].astype(np.int32)
  from sklearn import datasets  # pylint: disable=g-import-not-at-top  (slow import)
  digits = datasets.load_digits()
  return digits.images, digits.target.astype(np.int32)


def load_digits() -> Dataset:
  """Loads the scikit-learn digits with a fixed stratified 70 / 10 / 20 % split.

  Pixels go from scikit-learn's 0..16 to uint8 0..255 (round(x * 255 / 16)). The split is the
  same on every call and every machine (see `split_indices`, seed 0); sizes are
  1,259 / 179 / 359.

  Returns:
    A `Dataset` named 'digits' of `ArraySource`s with images uint8 [N, 8, 8, 1] and int32
    labels in 0..9.
  """
  pixels, labels = _read_digits()
  images = np.round(pixels * (255.0 / 16.0)).astype(np.uint8)[..., None]
  train, validation, test = split_indices(
      labels, validation_fraction=VALIDATION_FRACTION, test_fraction=TEST_FRACTION,
      seed=_SPLIT_SEED)
  return Dataset(
      name='digits',
      train=ArraySource(images[train], labels[train]),
      validation=ArraySource(images[validation], labels[validation]),
      test=ArraySource(images[test], labels[test]),
      num_classes=NUM_CLASSES)
