"""Fashion-MNIST from its four IDX files (the Debian package `dataset-fashion-mnist`).

70,000 grey 28x28 images of 10 kinds of clothing (Xiao et al., 2017). The files are read
from a directory, by default where `sudo apt-get install dataset-fashion-mnist` puts them;
when they are not there, a TFDS `fashion_mnist` that is already prepared is used instead.
Nothing is ever downloaded.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from jssl.data.base import ArraySource, Dataset, MissingDatasetError

DEFAULT_DATA_DIR = '/usr/share/datasets/fashion-mnist'
NUM_CLASSES = 10
IMAGE_SIZE = 28
# The four IDX files of the official release; each may also be gzipped (name + '.gz').
TRAIN_IMAGES = 'train-images-idx3-ubyte'
TRAIN_LABELS = 'train-labels-idx1-ubyte'
TEST_IMAGES = 't10k-images-idx3-ubyte'
TEST_LABELS = 't10k-labels-idx1-ubyte'
IDX_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# IDX data-type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"). Only
# unsigned bytes occur in (Fashion-)MNIST, so only they are read.
_IDX_UBYTE = 0x08


def read_idx(path: str) -> np.ndarray:
  """Reads one IDX file of unsigned bytes, plain or gzipped (by a '.gz' suffix).

  The header is two zero bytes, a data-type code (0x08: unsigned byte), the number of
  dimensions D, then D big-endian uint32 sizes; the data follow in C order.

  Args:
    path: the file.

  Returns:
    uint8 array whose shape is the D sizes of the header.

  Raises:
    ValueError: naming `path`, when the file is not a complete IDX file of unsigned bytes.
  """
  try:
    if path.endswith('.gz'):
      with gzip.open(path, 'rb') as f:
        content = f.read()
    else:
      with open(path, 'rb') as f:
        content = f.read()
  except (EOFError, zlib.error, gzip.BadGzipFile) as e:
    raise ValueError(f'{path} is not a readable gzip file ({e}); the download is probably '
                     'truncated or corrupt, get the file again.') from e

  def corrupt(what: str) -> ValueError:
    return ValueError(f'{path} is not a valid IDX file: {what}. The file is probably '
                      'truncated or corrupt; get it again.')

  if len(content) < 4:
    raise corrupt(f'it has {len(content)} bytes, fewer than the 4 of an IDX magic number')
  if content[0] != 0 or content[1] != 0:
    raise corrupt(f'its magic number starts with bytes {content[0]:#04x} {content[1]:#04x} '
                  'instead of 0x00 0x00')
  dtype_code, ndim = content[2], content[3]
  if dtype_code != _IDX_UBYTE:
    raise corrupt(f'its data-type code is {dtype_code:#04x}; only {_IDX_UBYTE:#04x} '
                  '(unsigned byte) is supported')
  if ndim == 0:
    raise corrupt('its header declares 0 dimensions')
  header_size = 4 + 4 * ndim
  if len(content) < header_size:
    raise corrupt(f'its header declares {ndim} dimensions but the file ends after '
                  f'{len(content)} bytes')
  shape = tuple(int(d) for d in np.frombuffer(content, dtype='>u4', count=ndim, offset=4))
  expected = int(np.prod(shape, dtype=np.int64))
  found = len(content) - header_size
  if found != expected:
    raise corrupt(f'its header declares shape {shape} ({expected} bytes of data) but it '
                  f'holds {found} bytes of data')
  return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape)


def _find_idx_files(data_dir: str) -> tuple[dict[str, str], list[str]]:
  """Returns ({name: path} of the IDX files found, [names not found]); plain before .gz."""
  found, missing = {}, []
  for name in IDX_FILES:
    for candidate in (name, name + '.gz'):
      path = os.path.join(data_dir, candidate)
      if os.path.isfile(path):
        found[name] = path
        break
    else:
      missing.append(name)
  return found, missing


def _read_split(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads one images/labels pair and checks they fit together."""
  images = read_idx(images_path)
  labels = read_idx(labels_path)
  if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
    raise ValueError(f'{images_path} holds an array of shape {images.shape}; Fashion-MNIST '
                     f'images are [N, {IMAGE_SIZE}, {IMAGE_SIZE}].')
  if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
    raise ValueError(f'{labels_path} holds labels of shape {labels.shape}, which does not '
                     f'match the {images.shape[0]} images of {images_path}.')
  if labels.size and labels.max() >= NUM_CLASSES:
    raise ValueError(f'{labels_path} holds label {labels.max()}; Fashion-MNIST labels are '
                     f'0..{NUM_CLASSES - 1}.')
  return images[..., None], labels.astype(np.int32)


def _split_train(images: np.ndarray, labels: np.ndarray, test_images: np.ndarray,
                 test_labels: np.ndarray, validation_size: int) -> Dataset:
  n = images.shape[0]
  if not 0 < validation_size < n:
    raise ValueError(f'validation_size must be in [1, {n - 1}] (the official train split has '
                     f'{n} images), got {validation_size}.')
  return Dataset(
      name='fashion_mnist',
      train=ArraySource(images[:-validation_size], labels[:-validation_size]),
      validation=ArraySource(images[-validation_size:], labels[-validation_size:]),
      test=ArraySource(test_images, test_labels),
      num_classes=NUM_CLASSES)


def load_fashion_mnist(data_dir: str = DEFAULT_DATA_DIR, *, validation_size: int = 5000,
                       tfds_data_dir: str | None = None) -> Dataset:
  """Loads Fashion-MNIST with a fixed validation split.

  Validation is the last `validation_size` images of the official train split, train is the
  rest, test is the official t10k split; so by default 55,000 / 5,000 / 10,000 images.

  When `data_dir` lacks any of the four IDX files, a TFDS `fashion_mnist` already prepared
  (as array_record) in `tfds_data_dir` is used instead, with splits 'train[:-V]',
  'train[-V:]', 'test' for V = validation_size. TFDS stores the train split in its own
  shuffled order, so that validation set holds other images than the IDX one: compare
  validation numbers only between runs that read the same copy.

  Args:
    data_dir: directory holding train-images-idx3-ubyte, train-labels-idx1-ubyte,
      t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each plain or gzipped ('.gz').
    validation_size: number of official train images held out for validation.
    tfds_data_dir: TFDS data directory of the fallback; None means TFDS's default
      ($TFDS_DATA_DIR or ~/tensorflow_datasets).

  Returns:
    A `Dataset` named 'fashion_mnist' whose images are uint8 [N, 28, 28, 1] and labels
    int32 in 0..9.

  Raises:
    MissingDatasetError: neither the IDX files nor a prepared TFDS copy were found; the
      message lists every place looked at and how to get the data.
    ValueError: an IDX file is corrupt or truncated (the message names it), or
      `validation_size` is out of range.
  """
  if validation_size < 1:
    raise ValueError(f'validation_size must be at least 1, got {validation_size}.')
  found, missing = _find_idx_files(data_dir)
  if not missing:
    train_images, train_labels = _read_split(found[TRAIN_IMAGES], found[TRAIN_LABELS])
    test_images, test_labels = _read_split(found[TEST_IMAGES], found[TEST_LABELS])
    return _split_train(train_images, train_labels, test_images, test_labels, validation_size)

  if not os.path.isdir(data_dir):
    idx_status = f'{data_dir}: the directory does not exist'
  else:
    idx_status = (f'{data_dir}: missing {", ".join(missing)} (neither plain nor .gz)')
  dataset, tfds_status = _load_from_tfds(tfds_data_dir, validation_size)
  if dataset is not None:
    return dataset
  raise MissingDatasetError(
      'Fashion-MNIST was not found. Looked in:\n'
      f'  - {idx_status}; expected the IDX files {", ".join(IDX_FILES)} (each plain or '
      '.gz)\n'
      f'  - {tfds_status}\n'
      'To get it, do one of:\n'
      f'  - sudo apt-get install dataset-fashion-mnist  (puts the files in {DEFAULT_DATA_DIR})\n'
      '  - set --config.dataset.data_dir=DIR to a directory holding the four IDX files\n'
      '  - on a machine with internet, run `tfds build fashion_mnist --data_dir=DIR '
      '--file_format=array_record` and copy DIR/fashion_mnist into the TFDS data dir '
      'here.')


def _load_from_tfds(tfds_data_dir: str | None,
                    validation_size: int) -> tuple[Dataset | None, str]:
  """Returns (the prepared TFDS fashion_mnist or None, where it was looked for and why not)."""
  try:
    from jssl.data import tfds as tfds_lib  # pylint: disable=g-import-not-at-top
    data_dir = tfds_lib.resolve_data_dir(tfds_data_dir)
  except ImportError as e:
    return None, f'TFDS: not usable ({e})'
  try:
    dataset = tfds_lib.load_tfds(
        'fashion_mnist', data_dir=data_dir, train_split=f'train[:-{validation_size}]',
        validation_split=f'train[-{validation_size}:]', test_split='test')
  except MissingDatasetError:
    return None, f'TFDS data_dir {data_dir}: fashion_mnist is not prepared there'
  return dataset, ''
