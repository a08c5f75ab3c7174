"""Datasets by name: `load_dataset('digits')`, `load_dataset('cifar10', image_size=32)`.

`DATASETS` is the lookup table of the image names a config may use. Its in-memory datasets
(digits, Fashion-MNIST from its IDX files, emoji rendered from Debian's colour font) need
nothing beyond NumPy, scikit-learn and Pillow; the others are TFDS image datasets, which must be prepared as array_record in the TFDS data dir
(see `jssl.data.tfds`). Any other TFDS dataset is reached with the explicit prefix 'tfds:',
e.g. 'tfds:oxford_flowers102' or 'tfds:imagenette/160px-v2'; the table stays short and a
typo is never silently sent to TFDS. Text (`jssl.data.text`), graphs (`jssl.data.graph`) and
time series (`jssl.data.series`) have their own tables; `modality_of` tells them apart.
"""

from __future__ import annotations

import functools
from typing import Callable

from jssl.data.base import ArraySource, Dataset, DatasetError, MissingDatasetError, Source
from jssl.data.digits import load_digits
from jssl.data.fashion_mnist import DEFAULT_DATA_DIR as FASHION_MNIST_DIR
from jssl.data.fashion_mnist import load_fashion_mnist
from jssl.data.iterator import BatchIterator
from jssl.data.iterator import GrainIterator
from jssl.data.series import SERIES_DATASETS
from jssl.data.series import TS_PREFIX

TFDS_PREFIX = 'tfds:'


def _native_size(name: str, size: int, data_dir: str | None,
                 image_size: int | None) -> None:
  """In-memory datasets have one stored size and no directory to choose (except below)."""
  if image_size is not None and image_size != size:
    raise ValueError(f'{name} images are {size}x{size}; image_size={image_size} is not '
                     'supported for it: leave --config.dataset.stored_size unset (the size of the '
                     'augmented views the model sees is --config.dataset.image_size).')
  if data_dir is not None and name == 'digits':
    raise ValueError(f'digits ships inside scikit-learn and takes no data_dir, got {data_dir!r}.')
  if data_dir is not None and name == 'emoji':
    raise ValueError('emoji is rendered from the installed Debian fonts and takes no data_dir, '
                     f'got {data_dir!r}.')


def _digits(*, data_dir: str | None, image_size: int | None) -> Dataset:
  _native_size('digits', 8, data_dir, image_size)
  return load_digits()


def _emoji(*, data_dir: str | None, image_size: int | None) -> Dataset:
  from jssl.data.emoji import SIZE, load_emoji  # pylint: disable=g-import-not-at-top
  _native_size('emoji', image_size or SIZE, data_dir, None)
  if image_size is not None and not 8 <= image_size <= 128:
    raise ValueError(f'emoji are rendered at 8 to 128 pixels a side; stored_size={image_size} '
                     'is outside (default 32).')
  return load_emoji(image_size or SIZE)


def _fashion_mnist(*, data_dir: str | None, image_size: int | None) -> Dataset:
  _native_size('fashion_mnist', 28, data_dir, image_size)
  return load_fashion_mnist(FASHION_MNIST_DIR if data_dir is None else data_dir)


def _tfds(tfds_name: str, *, data_dir: str | None, image_size: int | None) -> Dataset:
  from jssl.data.tfds import load_tfds  # pylint: disable=g-import-not-at-top
  return load_tfds(tfds_name, data_dir=data_dir, image_size=image_size)


# name -> loader(*, data_dir, image_size). For 'fashion_mnist' data_dir is the directory of
# its IDX files (default the Debian package's); for TFDS names it is the TFDS data dir.
DATASETS: dict[str, Callable[..., Dataset]] = {
    'digits': _digits,
    'fashion_mnist': _fashion_mnist,
    'emoji': _emoji,
    **{name: functools.partial(_tfds, name) for name in (
        'mnist', 'svhn_cropped', 'cifar10', 'cifar100', 'stl10', 'imagenette',
        'imagenet2012')},
}
KNOWN_DATASETS: tuple[str, ...] = tuple(DATASETS)


def _text_names() -> tuple[str, ...]:
  from jssl.data.text import TEXT_DATASETS  # pylint: disable=g-import-not-at-top
  return tuple(TEXT_DATASETS)


def _graph_names() -> tuple[str, ...]:
  from jssl.data.graph import GRAPH_DATASETS  # pylint: disable=g-import-not-at-top
  return tuple(GRAPH_DATASETS)


def modality_of(name: str) -> str:
  """'text', 'graph', 'series' or 'image': which family of loaders reads the dataset `name`."""
  from jssl.data.graph import PLANETOID_PREFIX  # pylint: disable=g-import-not-at-top
  if name in _text_names() or name.startswith(TFDS_TEXT_PREFIX):
    return 'text'
  if name in SERIES_DATASETS or name.startswith(TS_PREFIX):
    return 'series'
  if name in _graph_names() or name.startswith(PLANETOID_PREFIX):
    return 'graph'
  return 'image'


TFDS_TEXT_PREFIX = 'tfds_text:'


def check_dataset_name(name: str) -> None:
  """Raises ValueError, listing the valid names, unless `load_dataset` accepts `name`."""
  from jssl.data.graph import PLANETOID_PREFIX  # pylint: disable=g-import-not-at-top
  if name in DATASETS or name in _text_names() or name in _graph_names():
    return
  if name in SERIES_DATASETS:
    return
  for prefix in (TFDS_TEXT_PREFIX, PLANETOID_PREFIX, TS_PREFIX):
    if name.startswith(prefix) and len(name) > len(prefix):
      return
  if name.startswith(TFDS_PREFIX) and len(name) > len(TFDS_PREFIX):
    return
  raise ValueError(
      f'unknown dataset {name!r}. Valid names: images {", ".join(KNOWN_DATASETS)}; text '
      f'{", ".join(_text_names())}; graphs {", ".join(_graph_names())}; time series '
      f'{", ".join(SERIES_DATASETS)}; or '
      f'"{TFDS_PREFIX}NAME" for any other TFDS image dataset prepared as array_record '
      f'(e.g. "{TFDS_PREFIX}oxford_flowers102"), "{TFDS_TEXT_PREFIX}NAME" for a TFDS text '
      f'dataset (e.g. "{TFDS_TEXT_PREFIX}imdb_reviews"), "planetoid:NAME" for Planetoid files '
      'in --config.dataset.data_dir (e.g. "planetoid:cora"), "ts:NAME" for UEA/UCR .ts files in '
      '--config.dataset.data_dir (e.g. "ts:EthanolConcentration").')


def load_dataset(name: str, *, data_dir: str | None = None,
                 image_size: int | None = None) -> Dataset:
  """Loads a dataset by name.

  Args:
    name: a key of `DATASETS`, or 'tfds:NAME' for any prepared TFDS image dataset (NAME may
      carry a config and version, 'tfds:imagenette/160px-v2:1.0.0').
    data_dir: where the data is: for 'fashion_mnist' the IDX directory (None: the Debian
      package's /usr/share/datasets/fashion-mnist); for TFDS datasets the TFDS data dir
      (None: $TFDS_DATA_DIR or ~/tensorflow_datasets); digits takes none.
    image_size: side images are resized and centre-cropped to; needed for datasets whose
      images vary in size (imagenet2012, imagenette), None keeps the stored size.

  Returns:
    The `Dataset`, whose sources return uint8 [B, H, W, C] images and int32 labels.

  Raises:
    ValueError: unknown name (the message lists the valid ones), or unusable options.
    MissingDatasetError: the data is not on this machine; the message says how to get it.
  """
  check_dataset_name(name)
  if name in DATASETS:
    return DATASETS[name](data_dir=data_dir, image_size=image_size)
  return _tfds(name[len(TFDS_PREFIX):], data_dir=data_dir, image_size=image_size)



def load_dataset_from_config(name: str, dataset_config, *, tokenizer=None) -> Dataset:
  """Loads the dataset `name` with the options of a config's `dataset` section.

  Images read `data_dir` and `stored_size`; text datasets `vocab_size` and `max_length` (and
  use `tokenizer` when given: an evaluation dataset read with the training corpus's); graphs
  `feature_dim` (WordNet's gloss features; their splits are fixed, seed 0, so every run of
  every method is probed on the same nodes); time series `data_dir` (None: sktime's copy).
  """
  check_dataset_name(name)
  modality = modality_of(name)
  data_dir = dataset_config.get('data_dir')
  if modality == 'text':
    from jssl.data import text  # pylint: disable=g-import-not-at-top
    if name.startswith(TFDS_TEXT_PREFIX):
      if tokenizer is None:
        tokenizer = text.load_text_dataset(
            'austen_wordnet', vocab_size=dataset_config.vocab_size,
            max_length=dataset_config.max_length).tokenizer
      return text.load_tfds_text(name[len(TFDS_TEXT_PREFIX):], tokenizer=tokenizer,
                                 max_length=dataset_config.max_length, data_dir=data_dir)
    return text.load_text_dataset(name, vocab_size=dataset_config.vocab_size,
                                  max_length=dataset_config.max_length, tokenizer=tokenizer,
                                  data_dir=data_dir)
  if modality == 'series':
    from jssl.data.series import load_series_dataset  # pylint: disable=g-import-not-at-top
    return load_series_dataset(name, data_dir=data_dir)
  if modality == 'graph':
    from jssl.data import graph  # pylint: disable=g-import-not-at-top
    return graph.load_graph_dataset(name, data_dir=data_dir,
                                    feature_dim=dataset_config.feature_dim)
  return load_dataset(name, data_dir=data_dir, image_size=dataset_config.get('stored_size'))


def device_constants(dataset: Dataset) -> dict:
  """`dataset.device_constants()`: what every step reads whole ({} for images and text)."""
  return dataset.device_constants()
