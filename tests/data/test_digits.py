"""Tests of jssl.data.digits."""

import numpy as np
import pytest
from sklearn import datasets

from jssl.data import digits


@pytest.fixture(scope='module')
def dataset():
  return digits.load_digits()


def _rows(source):
  """Each example as bytes (image and label), to match examples across splits."""
  return {source.images[i].tobytes() + bytes([source.labels[i]]) for i in range(len(source))}


def test_sizes_add_up_to_the_whole_dataset(dataset):
  sizes = [len(dataset.train), len(dataset.validation), len(dataset.test)]
  assert sum(sizes) == 1797
  # About 70 / 10 / 20 %.
  np.testing.assert_allclose(np.array(sizes) / 1797, [0.7, 0.1, 0.2], atol=0.01)
  assert dataset.num_classes == 10
  assert dataset.name == 'digits'


def test_every_example_is_in_exactly_one_split(dataset):
  raw = datasets.load_digits()
  train, validation, test = digits.split_indices(
      raw.target, validation_fraction=0.1, test_fraction=0.2, seed=0)
  all_indices = np.concatenate([train, validation, test])
  assert np.array_equal(np.sort(all_indices), np.arange(1797))
  # The loaded splits are those indices of the raw data.
  for indices, source in ((train, dataset.train), (validation, dataset.validation),
                          (test, dataset.test)):
    np.testing.assert_array_equal(source.labels, raw.target[indices])
    np.testing.assert_array_equal(
        source.images[..., 0], np.round(raw.images[indices] * 255 / 16).astype(np.uint8))


def test_splits_are_disjoint(dataset):
  # The digits hold a few duplicate images; count on (image, label) rows of distinct examples.
  train, validation, test = _rows(dataset.train), _rows(dataset.validation), _rows(dataset.test)
  raw = datasets.load_digits()
  duplicates = 1797 - len({raw.images[i].tobytes() + bytes([raw.target[i]])
                           for i in range(1797)})
  assert len(train & validation) + len(train & test) + len(validation & test) <= duplicates


def test_every_class_is_in_every_split_in_proportion(dataset):
  for source, fraction in ((dataset.train, 0.7), (dataset.validation, 0.1),
                           (dataset.test, 0.2)):
    counts = np.bincount(source.labels, minlength=10)
    assert counts.min() > 0
    expected = fraction * np.bincount(datasets.load_digits().target)
    assert np.all(np.abs(counts - expected) <= 1.5), (counts, expected)


def test_deterministic_across_calls(dataset):
  again = digits.load_digits()
  for split in ('train', 'validation', 'test'):
    np.testing.assert_array_equal(getattr(dataset, split).images, getattr(again, split).images)
    np.testing.assert_array_equal(getattr(dataset, split).labels, getattr(again, split).labels)


def test_shapes_dtypes_and_value_range(dataset):
  assert dataset.image_shape == (8, 8, 1)
  batch = dataset.train.get_batch(np.array([0, 5, 3]))
  assert batch['image'].shape == (3, 8, 8, 1)
  assert batch['image'].dtype == np.uint8
  assert batch['label'].dtype == np.int32
  images = np.concatenate([dataset.train.images, dataset.validation.images,
                           dataset.test.images])
  assert images.min() == 0 and images.max() == 255
  # 17 grey levels, 0..16 scaled to 0..255.
  np.testing.assert_array_equal(np.unique(images), np.round(np.arange(17) * 255 / 16))
  labels = np.concatenate([dataset.train.labels, dataset.validation.labels,
                           dataset.test.labels])
  assert set(labels.tolist()) == set(range(10))


def test_read_without_sklearn_equals_sklearns_loader():
  """The CSV read of `_read_digits` gives exactly `sklearn.datasets.load_digits`'s arrays."""
  pixels, labels = digits._read_digits()  # pylint: disable=protected-access
  reference = datasets.load_digits()
  np.testing.assert_array_equal(pixels, reference.images)
  np.testing.assert_array_equal(labels, reference.target)
  assert labels.dtype == np.int32

