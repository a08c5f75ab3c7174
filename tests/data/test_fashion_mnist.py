"""Tests of jssl.data.fashion_mnist on tiny synthetic IDX files (and the real ones if installed)."""

import gzip
import os
import struct

import numpy as np
import pytest

from jssl.data import fashion_mnist
from jssl.data.base import MissingDatasetError


def _idx_bytes(array: np.ndarray) -> bytes:
  """The IDX encoding of a uint8 array, written from the format's description."""
  header = struct.pack('>BBBB', 0, 0, 0x08, array.ndim)
  header += b''.join(struct.pack('>I', d) for d in array.shape)
  return header + array.astype(np.uint8).tobytes()


def _write(path, content: bytes) -> str:
  path = os.fspath(path)
  if path.endswith('.gz'):
    with gzip.open(path, 'wb') as f:
      f.write(content)
  else:
    with open(path, 'wb') as f:
      f.write(content)
  return path


def _fake_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
          rng.integers(0, 10, (n,), dtype=np.uint8))


@pytest.fixture
def idx_dir(tmp_path):
  """A directory with 12 train and 4 test examples; two files plain, two gzipped."""
  train_images, train_labels = _fake_split(12, 0)
  test_images, test_labels = _fake_split(4, 1)
  _write(tmp_path / 'train-images-idx3-ubyte.gz', _idx_bytes(train_images))
  _write(tmp_path / 'train-labels-idx1-ubyte', _idx_bytes(train_labels))
  _write(tmp_path / 't10k-images-idx3-ubyte', _idx_bytes(test_images))
  _write(tmp_path / 't10k-labels-idx1-ubyte.gz', _idx_bytes(test_labels))
  return tmp_path, (train_images, train_labels, test_images, test_labels)


@pytest.mark.parametrize('suffix', ['', '.gz'])
@pytest.mark.parametrize('shape', [(5,), (3, 4, 2), (2, 28, 28)])
def test_read_idx_round_trips(tmp_path, suffix, shape):
  array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
  path = _write(tmp_path / f'x-idx{len(shape)}-ubyte{suffix}', _idx_bytes(array))
  read = fashion_mnist.read_idx(path)
  assert read.dtype == np.uint8
  np.testing.assert_array_equal(read, array)


def test_load_splits_exactly(idx_dir):
  directory, (train_images, train_labels, test_images, test_labels) = idx_dir
  dataset = fashion_mnist.load_fashion_mnist(os.fspath(directory), validation_size=3)
  assert dataset.name == 'fashion_mnist'
  assert dataset.num_classes == 10
  assert dataset.image_shape == (28, 28, 1)
  assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (9, 3, 4)
  # Validation is the last 3 of the official train split, train the first 9.
  np.testing.assert_array_equal(dataset.train.images[..., 0], train_images[:9])
  np.testing.assert_array_equal(dataset.train.labels, train_labels[:9])
  np.testing.assert_array_equal(dataset.validation.images[..., 0], train_images[9:])
  np.testing.assert_array_equal(dataset.validation.labels, train_labels[9:])
  np.testing.assert_array_equal(dataset.test.images[..., 0], test_images)
  np.testing.assert_array_equal(dataset.test.labels, test_labels)
  batch = dataset.validation.get_batch(np.array([2, 0]))
  assert batch['image'].shape == (2, 28, 28, 1) and batch['image'].dtype == np.uint8
  assert batch['label'].dtype == np.int32
  np.testing.assert_array_equal(batch['label'], train_labels[[11, 9]])


def _corruptions():
  good = _idx_bytes(np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28) % 251)
  return {
      'bad_magic': b'\x01' + good[1:],
      'wrong_dtype_code': good[:2] + b'\x0d' + good[3:],
      'header_cut': good[:9],
      'data_truncated': good[:-1],
      'data_too_long': good + b'\x00',
      'empty': b'',
  }


@pytest.mark.parametrize('corruption', sorted(_corruptions()))
def test_corrupt_file_raises_value_error_naming_it(idx_dir, corruption):
  directory, _ = idx_dir
  path = _write(directory / 't10k-images-idx3-ubyte', _corruptions()[corruption])
  with pytest.raises(ValueError, match='t10k-images-idx3-ubyte') as error:
    fashion_mnist.load_fashion_mnist(os.fspath(directory), validation_size=3)
  assert path in str(error.value)


def test_truncated_gzip_raises_value_error_naming_it(idx_dir):
  directory, _ = idx_dir
  path = directory / 'train-images-idx3-ubyte.gz'
  content = path.read_bytes()
  path.write_bytes(content[:len(content) // 2])
  with pytest.raises(ValueError, match='train-images-idx3-ubyte.gz'):
    fashion_mnist.load_fashion_mnist(os.fspath(directory), validation_size=3)


def test_labels_must_match_images(idx_dir):
  directory, _ = idx_dir
  _write(directory / 't10k-labels-idx1-ubyte.gz', _idx_bytes(np.zeros(5, np.uint8)))
  with pytest.raises(ValueError, match='does not match the 4 images'):
    fashion_mnist.load_fashion_mnist(os.fspath(directory), validation_size=3)


@pytest.mark.parametrize('validation_size', [0, 12])
def test_validation_size_out_of_range(idx_dir, validation_size):
  directory, _ = idx_dir
  with pytest.raises(ValueError, match='validation_size'):
    fashion_mnist.load_fashion_mnist(os.fspath(directory), validation_size=validation_size)


def test_missing_directory_says_where_and_how(tmp_path):
  missing = os.fspath(tmp_path / 'no-such-dir')
  empty_tfds_dir = os.fspath(tmp_path / 'tfds')
  with pytest.raises(MissingDatasetError) as error:
    fashion_mnist.load_fashion_mnist(missing, tfds_data_dir=empty_tfds_dir)
  message = str(error.value)
  assert missing in message
  assert 'sudo apt-get install dataset-fashion-mnist' in message
  assert '--config.dataset.data_dir' in message
  assert empty_tfds_dir in message
  assert 'tfds build fashion_mnist' in message
  for name in fashion_mnist.IDX_FILES:
    assert name in message


def test_missing_file_is_named(idx_dir):
  directory, _ = idx_dir
  os.remove(directory / 't10k-labels-idx1-ubyte.gz')
  with pytest.raises(MissingDatasetError, match='missing t10k-labels-idx1-ubyte'):
    fashion_mnist.load_fashion_mnist(os.fspath(directory),
                                     tfds_data_dir=os.fspath(directory / 'tfds'))


def test_falls_back_to_prepared_tfds(tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  from PIL import Image  # pylint: disable=g-import-not-at-top

  images, labels = _fake_split(10, 2)

  # A tiny stand-in for TFDS's fashion_mnist: same name, version and features, so that
  # `tfds.builder('fashion_mnist')` reads it as the real thing.
  with tfds.core.registered.skip_registration():

    class FashionMnist(tfds.core.GeneratorBasedBuilder):
      VERSION = tfds.core.Version('3.0.1')

      def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, disable_shuffling=True,
            features=tfds.features.FeaturesDict({
                'image': tfds.features.Image(shape=(28, 28, 1)),
                'label': tfds.features.ClassLabel(num_classes=10)}))

      def _split_generators(self, dl_manager):
        del dl_manager
        return {'train': self._generate_examples(0, 7), 'test': self._generate_examples(7, 10)}

      def _generate_examples(self, start, stop):
        for i in range(start, stop):
          yield i, {'image': Image.fromarray(images[i]), 'label': int(labels[i])}

  tfds_dir = os.fspath(tmp_path / 'tfds')
  FashionMnist(data_dir=tfds_dir, file_format='array_record').download_and_prepare()

  dataset = fashion_mnist.load_fashion_mnist(os.fspath(tmp_path / 'no-idx'), validation_size=2,
                                             tfds_data_dir=tfds_dir)
  assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (5, 2, 3)
  assert dataset.num_classes == 10
  assert dataset.image_shape == (28, 28, 1)
  batch = dataset.validation.get_batch(np.arange(2))
  np.testing.assert_array_equal(batch['image'][..., 0], images[5:7])
  np.testing.assert_array_equal(batch['label'], labels[5:7])
  batch = dataset.test.get_batch(np.array([2]))
  np.testing.assert_array_equal(batch['image'][..., 0], images[9:10])


@pytest.mark.skipif(
    not os.path.isdir(fashion_mnist.DEFAULT_DATA_DIR),
    reason=f'{fashion_mnist.DEFAULT_DATA_DIR} is absent (install the Debian package '
           'dataset-fashion-mnist to run this test)')
def test_real_files():
  dataset = fashion_mnist.load_fashion_mnist()
  assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (55000, 5000,
                                                                              10000)
  assert dataset.image_shape == (28, 28, 1)
  for source in (dataset.train, dataset.validation, dataset.test):
    assert source.images.dtype == np.uint8
    assert set(np.unique(source.labels).tolist()) == set(range(10))
  # Published class balance: 6,000 train and 1,000 test images per class.
  assert np.all(np.bincount(np.concatenate([dataset.train.labels, dataset.validation.labels]))
                == 6000)
  assert np.all(np.bincount(dataset.test.labels) == 1000)
  assert dataset.train.images.max() == 255 and dataset.train.images.min() == 0
