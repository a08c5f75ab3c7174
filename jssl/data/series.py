"""Labelled multichannel time series from the UEA/UCR archives, read from their `.ts` files.

The `sktime` wheel (a requirement of jssl) ships several archive datasets as `.ts` text files
under `sktime/datasets/data/<Name>/<Name>_{TRAIN,TEST}.ts`; they are read here without importing
sktime (a small text format, and sktime's import is slow). Names (`SERIES_DATASETS`):

  basic_motions      BasicMotions: 40 / 40 smartwatch recordings, 6 channels, length 100, 4 activities
  japanese_vowels    JapaneseVowels: 270 / 370 utterances, 12 LPC channels, length 7-29, 9 speakers
  gun_point          GunPoint: 50 / 150, 1 channel, length 150, 2 classes
  italy_power_demand ItalyPowerDemand: 67 / 1,029, 1 channel, length 24, 2 classes
  arrow_head         ArrowHead: 36 / 175, 1 channel, length 251, 3 classes
  osu_leaf           OSULeaf: 200 / 242, 1 channel, length 427, 6 classes
  acsf1              ACSF1: 100 / 100, 1 channel, length 1,460, 10 appliances
  plaid              PLAID: 537 / 537, 1 channel, length 100-1,344, 11 appliances

Any other archive dataset is reached as 'ts:<Name>' with `data_dir` holding `<Name>_TRAIN.ts`
and `<Name>_TEST.ts` (directly or in a `<Name>/` folder), e.g. the full UEA archive unpacked.

Splits: the archive's test split is `test`; the archive's train split is divided, stratified
with a fixed seed, into `train` and `validation` (round(20 %) of each class: BasicMotions
keeps 32 / 8). Channels are standardised with the mean and standard deviation of the
training split's observed steps. Series shorter than the longest are padded at the end with
zeros (the training mean after standardisation) and carry their true length, so a batch is
{'series': float32 [B, T, C], 'length': int32 [B], 'label': int32 [B]}.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os

import numpy as np

from jssl.data.base import Dataset, DatasetError, MissingDatasetError
from jssl.data.digits import split_indices

TS_PREFIX = 'ts:'
SERIES_DATASETS = {
    'basic_motions': 'BasicMotions',
    'japanese_vowels': 'JapaneseVowels',
    'gun_point': 'GunPoint',
    'italy_power_demand': 'ItalyPowerDemand',
    'arrow_head': 'ArrowHead',
    'osu_leaf': 'OSULeaf',
    'acsf1': 'ACSF1',
    'plaid': 'PLAID',
}
VALIDATION_FRACTION = 0.2
_SPLIT_SEED = 0


@dataclasses.dataclass(frozen=True)
class SeriesSource:
  """Padded series held in host memory."""

  series: np.ndarray  # float32 [N, T, C], zero after each series' length
  lengths: np.ndarray  # int32 [N], in [1, T]
  labels: np.ndarray  # int32 [N]

  @property
  def series_shape(self) -> tuple[int, int]:
    """(T, C): padded length and channels of every series `get_batch` returns."""
    return tuple(self.series.shape[1:])

  def __len__(self) -> int:
    return self.series.shape[0]

  def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    return {'series': self.series[indices], 'length': self.lengths[indices],
            'label': self.labels[indices]}


@dataclasses.dataclass(frozen=True)
class SeriesDataset(Dataset):
  """A `Dataset` of `SeriesSource`s; `class_names` are the archive's labels in id order."""
  class_names: tuple = ()

  @property
  def series_shape(self) -> tuple[int, int]:
    return self.train.series_shape


def _parse_value(text: str, path: str, line_number: int) -> float:
  if text == '?' or text.lower() == 'nan':
    raise DatasetError(f'{path}:{line_number}: missing values ("?") are not supported; impute '
                       'them first or choose a dataset without missing values.')
  try:
    return float(text)
  except ValueError:
    raise DatasetError(f'{path}:{line_number}: {text[:40]!r} is not a number; the file is not '
                       'a valid .ts file (or is truncated).') from None


def read_ts(path: str) -> tuple[list[np.ndarray], list[str], tuple[str, ...]]:
  """Reads a UEA/UCR `.ts` file of a classification problem.

  Args:
    path: the file.

  Returns:
    (series, labels, class_names): one float64 [T_i, C] array per example, its label as written
    in the file, and the classes of the `@classLabel` header in the header's order.

  Raises:
    DatasetError: the file lacks `@classLabel true ...` or `@data`, uses timestamps, has
      missing values, channels of different lengths in one example, a label not in the
      header, or a varying number of channels.
  """
  class_names, series, labels, in_data, channels = None, [], [], False, None
  with open(path, encoding='utf-8', errors='replace') as handle:
    for line_number, raw in enumerate(handle, 1):
      line = raw.strip()
      if not line or line.startswith('#'):
        continue
      if not in_data:
        key, _, rest = line.partition(' ')
        key = key.lower()
        if key == '@timestamps' and rest.strip().lower() == 'true':
          raise DatasetError(f'{path}: series with timestamps are not supported.')
        if key == '@classlabel':
          words = rest.split()
          if not words or words[0].lower() != 'true' or len(words) < 3:
            raise DatasetError(f'{path}: "@classLabel {rest}" declares no classes; jssl reads '
                               'classification problems (@classLabel true <classes>).')
          class_names = tuple(words[1:])
        elif key == '@data':
          in_data = True
        continue
      *dims, label = line.split(':')
      if not dims:
        raise DatasetError(f'{path}:{line_number}: a data line needs "values:...:label".')
      values = [[_parse_value(v, path, line_number) for v in dim.split(',')] for dim in dims]
      if len({len(v) for v in values}) != 1:
        raise DatasetError(f'{path}:{line_number}: the channels of one example have different '
                           'lengths; jssl reads series whose channels share their time steps.')
      if channels is not None and len(values) != channels:
        raise DatasetError(f'{path}:{line_number}: {len(values)} channels, earlier examples '
                           f'have {channels}.')
      channels = len(values)
      series.append(np.asarray(values, np.float64).T)
      labels.append(label.strip())
  if class_names is None or not in_data:
    raise DatasetError(f'{path}: no "@classLabel true ..." header or no "@data" section; not a '
                       'classification .ts file (or the file is truncated).')
  if not series:
    raise DatasetError(f'{path}: the @data section is empty.')
  unknown = sorted(set(labels) - set(class_names))
  if unknown:
    raise DatasetError(f'{path}: labels {unknown[:5]} are not among the header\'s classes '
                       f'{list(class_names)}.')
  return series, labels, class_names


def sktime_data_dir() -> str | None:
  """The `datasets/data` folder of the installed sktime wheel, or None."""
  spec = importlib.util.find_spec('sktime')
  for location in list(spec.submodule_search_locations or ()) if spec else []:
    path = os.path.join(location, 'datasets', 'data')
    if os.path.isdir(path):
      return path
  return None


def _find(archive_name: str, data_dir: str | None) -> tuple[str, str]:
  """(train path, test path) of `archive_name` in `data_dir` or the sktime wheel."""
  root = data_dir if data_dir is not None else sktime_data_dir()
  looked = [] if root is None else [os.path.join(root, archive_name), root]
  for folder in looked:
    paths = tuple(os.path.join(folder, f'{archive_name}_{split}.ts') for split in ('TRAIN', 'TEST'))
    if all(os.path.isfile(p) for p in paths):
      return paths
  if data_dir is None:
    where = (f'the sktime wheel ({looked[0]})' if looked else
             'the sktime wheel, which is not installed')
    raise MissingDatasetError(
        f'{archive_name}_TRAIN.ts / _TEST.ts not found in {where}. Install jssl\'s requirements '
        '(pip install -e . installs sktime, whose wheel carries the files), or pass '
        '--config.dataset.data_dir=DIR holding them.')
  raise MissingDatasetError(f'{archive_name}_TRAIN.ts and {archive_name}_TEST.ts not found in '
                            f'{" or ".join(looked)}; download the archive dataset there (e.g. '
                            'from timeseriesclassification.com) or fix --config.dataset.data_dir.')


def _pad(series: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
  channels = series[0].shape[1]
  out = np.zeros((len(series), length, channels), np.float32)
  lengths = np.zeros((len(series),), np.int32)
  for i, s in enumerate(series):
    n = min(s.shape[0], length)
    out[i, :n] = s[:n]
    lengths[i] = n
  return out, lengths


def load_series_dataset(name: str, *, data_dir: str | None = None) -> SeriesDataset:
  """Loads a time-series classification dataset.

  Args:
    name: a key of `SERIES_DATASETS`, or 'ts:<ArchiveName>' (then `data_dir` is required).
    data_dir: a folder holding `<Name>_TRAIN.ts` / `<Name>_TEST.ts` (or `<Name>/` with them);
      None: the sktime wheel's copy.

  Returns:
    A `SeriesDataset` (modality 'series'): see the module docstring for splits, standardisation
    and padding.

  Raises:
    ValueError: unknown name, or 'ts:' without a data_dir.
    MissingDatasetError: the files are not there; the message says how to get them.
    DatasetError: the files are malformed (see `read_ts`), or train and test disagree.
  """
  if name.startswith(TS_PREFIX):
    archive_name = name[len(TS_PREFIX):]
    if data_dir is None:
      raise ValueError(f'{name!r} reads {archive_name}_TRAIN.ts / _TEST.ts from '
                       '--config.dataset.data_dir; set it (the names without the prefix, '
                       f'{", ".join(SERIES_DATASETS)}, come with sktime).')
  elif name in SERIES_DATASETS:
    archive_name = SERIES_DATASETS[name]
  else:
    raise ValueError(f'unknown time-series dataset {name!r}; choose one of '
                     f'{", ".join(SERIES_DATASETS)} or "{TS_PREFIX}NAME" with a data_dir.')
  train_path, test_path = _find(archive_name, data_dir)
  train_series, train_labels, class_names = read_ts(train_path)
  test_series, test_labels, test_classes = read_ts(test_path)
  if test_classes != class_names or test_series[0].shape[1] != train_series[0].shape[1]:
    raise DatasetError(f'{train_path} and {test_path} disagree on the classes or channels.')
  observed = np.concatenate(train_series)
  mean, std = observed.mean(0), observed.std(0)
  std = np.where(std > 0, std, 1.0)
  standardise = lambda group: [((s - mean) / std).astype(np.float32) for s in group]
  train_series, test_series = standardise(train_series), standardise(test_series)
  length = max(s.shape[0] for s in train_series + test_series)
  class_id = {c: i for i, c in enumerate(class_names)}
  to_ids = lambda labels: np.asarray([class_id[l] for l in labels], np.int32)
  train_x, train_len = _pad(train_series, length)
  test_x, test_len = _pad(test_series, length)
  train_y, test_y = to_ids(train_labels), to_ids(test_labels)
  train, validation, _ = split_indices(train_y, validation_fraction=VALIDATION_FRACTION,
                                       test_fraction=0.0, seed=_SPLIT_SEED)
  part = lambda idx: SeriesSource(train_x[idx], train_len[idx], train_y[idx])
  return SeriesDataset(name=name, train=part(train), validation=part(validation),
                       test=SeriesSource(test_x, test_len, test_y),
                       num_classes=len(class_names), modality='series',
                       class_names=class_names)
