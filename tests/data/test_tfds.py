"""Tests of jssl.data.tfds (and the TFDS route of jssl.data.load_dataset), fully offline.

Two tiny TFDS datasets are built here with TFDS's own `GeneratorBasedBuilder` as ArrayRecord
files, without TensorFlow: images are handed to TFDS as PIL images, which it encodes to PNG
itself (NumPy images would need TensorFlow's encoder). The builders are not registered, so
`load_tfds` finds them the way it finds any prepared dataset: from the files in data_dir.
"""

import json
import os
import shutil

import numpy as np
import pytest

tfds = pytest.importorskip('tensorflow_datasets')

from PIL import Image  # pylint: disable=g-import-not-at-top,g-bad-import-order

import jssl.data  # pylint: disable=g-import-not-at-top
from jssl.data import tfds as tfds_lib  # pylint: disable=g-import-not-at-top
from jssl.data.base import MissingDatasetError  # pylint: disable=g-import-not-at-top

NUM_TRAIN, NUM_TEST = 40, 12


def _pattern(i: int, height: int, width: int, channels: int) -> np.ndarray:
  """Image i: a deterministic pattern whose every pixel depends on i, row, column, channel."""
  y, x, c = np.meshgrid(np.arange(height), np.arange(width), np.arange(channels), indexing='ij')
  return ((7 * i + 3 * y + 5 * x + 11 * c) % 256).astype(np.uint8)


def _varying_shape(i: int) -> tuple[int, int]:
  """(height, width) of grey image i: wide with short side 8, tall, or square."""
  return ((8, 16), (20, 10), (16, 16))[i % 3]


with tfds.core.registered.skip_registration():

  class JsslTestImages(tfds.core.GeneratorBasedBuilder):
    """40 train and 12 test RGB 12x12 images; image i has label i % 4."""

    VERSION = tfds.core.Version('1.0.0')

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self, disable_shuffling=True,  # examples stay in generation order
          features=tfds.features.FeaturesDict({
              'image': tfds.features.Image(shape=(12, 12, 3)),
              'label': tfds.features.ClassLabel(num_classes=4)}))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {'train': self._generate_examples(0, NUM_TRAIN),
              'test': self._generate_examples(NUM_TRAIN, NUM_TRAIN + NUM_TEST)}

    def _generate_examples(self, start, stop):
      for i in range(start, stop):
        yield i, {'image': Image.fromarray(_pattern(i, 12, 12, 3)), 'label': i % 4}

  class JsslTestVaryingImages(tfds.core.GeneratorBasedBuilder):
    """20 train and 8 validation grey images of three sizes; image i has label i % 3."""

    VERSION = tfds.core.Version('1.0.0')

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self, disable_shuffling=True,
          features=tfds.features.FeaturesDict({
              'image': tfds.features.Image(shape=(None, None, 1)),
              'label': tfds.features.ClassLabel(names=['a', 'b', 'c'])}))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {'train': self._generate_examples(0, 20),
              'validation': self._generate_examples(20, 28)}

    def _generate_examples(self, start, stop):
      for i in range(start, stop):
        image = _pattern(i, *_varying_shape(i), 1)[..., 0]
        yield i, {'image': Image.fromarray(image), 'label': i % 3}


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  directory = os.fspath(tmp_path_factory.mktemp('tfds'))
  for builder in (JsslTestImages, JsslTestVaryingImages):
    builder(data_dir=directory, file_format='array_record').download_and_prepare()
  return directory


def test_default_splits_lengths_and_metadata(data_dir):
  dataset = tfds_lib.load_tfds('jssl_test_images', data_dir=data_dir)
  assert dataset.name == 'jssl_test_images'
  assert dataset.num_classes == 4
  assert dataset.image_shape == (12, 12, 3)
  # No validation split: validation is the last 10 % of train, test is 'test'.
  assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (36, 4, 12)
  assert (dataset.train.split, dataset.validation.split, dataset.test.split) == (
      'train[:90%]', 'train[90%:]', 'test')
  for source in (dataset.train, dataset.validation, dataset.test):
    assert source.file_format == 'array_record'
    assert source.image_shape == (12, 12, 3)


@pytest.mark.parametrize('split, indices, first', [
    ('train', [0, 5, 35, 5], 0),
    ('validation', [3, 0], 36),
    ('test', [11, 0, 4], NUM_TRAIN),
])
def test_exact_pixels_and_labels(data_dir, split, indices, first):
  source = getattr(tfds_lib.load_tfds('jssl_test_images', data_dir=data_dir), split)
  batch = source.get_batch(np.array(indices))
  assert batch['image'].dtype == np.uint8 and batch['image'].shape == (len(indices), 12, 12, 3)
  assert batch['label'].dtype == np.int32
  for row, index in enumerate(indices):
    i = first + index
    np.testing.assert_array_equal(batch['image'][row], _pattern(i, 12, 12, 3))
    assert batch['label'][row] == i % 4


def test_split_overrides(data_dir):
  dataset = tfds_lib.load_tfds(
      'jssl_test_images', data_dir=data_dir, train_split='train[:10]',
      validation_split='test[:2]', test_split='train[-5:]')
  assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (10, 2, 5)
  np.testing.assert_array_equal(dataset.validation.get_batch(np.array([1]))['image'][0],
                                _pattern(NUM_TRAIN + 1, 12, 12, 3))
  np.testing.assert_array_equal(dataset.test.get_batch(np.arange(5))['label'],
                                np.arange(35, 40) % 4)


def test_resize_fixed_size_rgb(data_dir):
  dataset = tfds_lib.load_tfds('jssl_test_images', data_dir=data_dir, image_size=6)
  assert dataset.image_shape == (6, 6, 3)
  batch = dataset.test.get_batch(np.array([0, 3]))
  assert batch['image'].shape == (2, 6, 6, 3)
  for row, i in enumerate([NUM_TRAIN, NUM_TRAIN + 3]):
    expected = Image.fromarray(_pattern(i, 12, 12, 3)).resize((6, 6), Image.BILINEAR)
    np.testing.assert_array_equal(batch['image'][row], np.asarray(expected))
  # Asking for the stored size changes nothing.
  same = tfds_lib.load_tfds('jssl_test_images', data_dir=data_dir, image_size=12)
  np.testing.assert_array_equal(same.train.get_batch(np.array([7]))['image'][0],
                                _pattern(7, 12, 12, 3))


def test_varying_sizes_need_image_size(data_dir):
  with pytest.raises(ValueError, match='vary in size'):
    tfds_lib.load_tfds('jssl_test_varying_images', data_dir=data_dir)


def _reference_resize_crop(image: np.ndarray, size: int) -> np.ndarray:
  """Shorter side to `size`, then the centre, written out for the three test shapes."""
  height, width = image.shape
  pil = Image.fromarray(image)
  if (height, width) == (8, 16):  # already short side 8: crop only, columns 4..11
    return image[:, 4:12]
  if (height, width) == (20, 10):  # to 8 wide x 16 high, then rows 4..11
    return np.asarray(pil.resize((8, 16), Image.BILINEAR))[4:12]
  assert (height, width) == (16, 16)
  return np.asarray(pil.resize((8, 8), Image.BILINEAR))


def test_varying_sizes_resized_and_centre_cropped_grey(data_dir):
  dataset = tfds_lib.load_tfds('jssl_test_varying_images', data_dir=data_dir, image_size=8)
  assert dataset.num_classes == 3
  # Grey stays 1 channel.
  assert dataset.image_shape == (8, 8, 1)
  # No test split: test is 'validation', validation is held out of train.
  assert (dataset.train.split, dataset.validation.split, dataset.test.split) == (
      'train[:90%]', 'train[90%:]', 'validation')
  assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (18, 2, 8)
  for source, first, indices in ((dataset.train, 0, [0, 1, 2, 17]),
                                 (dataset.validation, 18, [1]),
                                 (dataset.test, 20, [0, 1, 2, 7])):
    batch = source.get_batch(np.array(indices))
    assert batch['image'].shape == (len(indices), 8, 8, 1)
    for row, index in enumerate(indices):
      i = first + index
      original = _pattern(i, *_varying_shape(i), 1)[..., 0]
      np.testing.assert_array_equal(batch['image'][row, ..., 0],
                                    _reference_resize_crop(original, 8))
      assert batch['label'][row] == i % 3


def test_constant_image_stays_constant_after_resize():
  image = Image.fromarray(np.full((30, 50, 3), 77, np.uint8))
  out = np.asarray(tfds_lib.resize_and_center_crop(image, 20))
  assert out.shape == (20, 20, 3)
  assert np.all(out == 77)


def test_get_batch_bounds_and_empty(data_dir):
  source = tfds_lib.load_tfds('jssl_test_images', data_dir=data_dir).test
  with pytest.raises(IndexError, match=r'\[0, 12\)'):
    source.get_batch(np.array([0, 12]))
  with pytest.raises(IndexError):
    source.get_batch(np.array([-1]))
  empty = source.get_batch(np.array([], np.int64))
  assert empty['image'].shape == (0, 12, 12, 3) and empty['label'].shape == (0,)


def test_unknown_dataset_is_missing_with_instructions(tmp_path):
  empty = os.fspath(tmp_path)
  with pytest.raises(MissingDatasetError) as error:
    tfds_lib.load_tfds('jssl_test_images', data_dir=empty)
  message = str(error.value)
  assert "'jssl_test_images'" in message
  assert empty in message
  assert 'tfds build jssl_test_images' in message and '--file_format=array_record' in message
  assert os.listdir(empty) == []  # nothing downloaded or written


def test_catalog_dataset_not_prepared_is_missing_without_download(tmp_path):
  empty = os.fspath(tmp_path)
  with pytest.raises(MissingDatasetError, match='tfds build mnist') as error:
    tfds_lib.load_tfds('mnist', data_dir=empty)
  assert os.path.join(empty, 'mnist') in str(error.value)
  with pytest.raises(MissingDatasetError,
                     match=os.path.join(empty, 'downloads', 'manual')) as error:
    tfds_lib.load_tfds('imagenet2012', data_dir=empty, image_size=32)
  assert 'ILSVRC2012_img_train.tar' in str(error.value)
  assert os.listdir(empty) == []


def test_tfrecord_dataset_asks_for_array_record(data_dir, tmp_path):
  # A copy of the dataset whose metadata says it was prepared as tfrecord (writing real
  # tfrecords needs TensorFlow); the check happens before any file is opened.
  source = os.path.join(data_dir, 'jssl_test_images')
  shutil.copytree(source, tmp_path / 'jssl_test_images')
  info_path = tmp_path / 'jssl_test_images' / '1.0.0' / 'dataset_info.json'
  info = json.loads(info_path.read_text())
  info['fileFormat'] = 'tfrecord'
  info_path.write_text(json.dumps(info))
  with pytest.raises(ValueError, match='--file_format=array_record') as error:
    tfds_lib.load_tfds('jssl_test_images', data_dir=os.fspath(tmp_path))
  assert 'tfrecord' in str(error.value)


def test_default_splits_rules():
  assert tfds_lib.default_splits('cifar10', ['train', 'test']) == (
      'train[:90%]', 'train[90%:]', 'test')
  assert tfds_lib.default_splits('imagenet2012', ['train', 'validation', 'test']) == (
      'train[:99%]', 'train[99%:]', 'validation')
  assert tfds_lib.default_splits('x', ['train', 'validation', 'test']) == (
      'train', 'validation', 'test')
  assert tfds_lib.default_splits('imagenette', ['train', 'validation']) == (
      'train[:90%]', 'train[90%:]', 'validation')
  with pytest.raises(ValueError, match='no "train" split'):
    tfds_lib.default_splits('x', ['test'])


def test_load_dataset_routes(data_dir, tmp_path):
  dataset = jssl.data.load_dataset('tfds:jssl_test_images', data_dir=data_dir, image_size=8)
  assert dataset.image_shape == (8, 8, 3)
  assert len(dataset.train) == 36
  with pytest.raises(MissingDatasetError, match='cifar10'):
    jssl.data.load_dataset('cifar10', data_dir=os.fspath(tmp_path))
  with pytest.raises(ValueError, match='tfds:') as error:
    jssl.data.load_dataset('cifar11')
  for name in jssl.data.KNOWN_DATASETS:
    assert name in str(error.value)
  assert {'digits', 'fashion_mnist', 'cifar10', 'imagenet2012'} <= set(jssl.data.KNOWN_DATASETS)
  digits = jssl.data.load_dataset('digits')
  assert digits.image_shape == (8, 8, 1)
  with pytest.raises(ValueError, match='8x8'):
    jssl.data.load_dataset('digits', image_size=32)


def test_grain_workers_decode_the_same_batches_as_the_plain_iterator(data_dir):
  """Two worker processes (spawned, each with its own copy of the TFDS source) yield the plain
  iterator's batches, pixels included, also after a restore from a saved position."""
  from test_iterator import _grain_matches_plain  # pylint: disable=g-import-not-at-top
  dataset = tfds_lib.load_tfds('jssl_test_images', data_dir=data_dir)
  _grain_matches_plain(dataset.train, workers=2, restore_at=5, total=9)  # 4 steps an epoch
