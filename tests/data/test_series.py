"""Time series from UEA/UCR .ts files: the reader on hand-written files, its errors, the
datasets of the sktime wheel (splits, standardisation, padding), 'ts:NAME' in a directory."""

import os

import numpy as np
import pytest

from jssl import data
from jssl.data import series

HEADER = ('#a comment\n@problemName Toy\n@timeStamps false\n@univariate false\n'
          '@dimensions 2\n@equalLength false\n@classLabel true up down\n@data\n')
ROWS = '1,2,3:4,5,6:up\n7,8:9,10:down\n0.5,1.5,2.5:1,1,1:down\n'


def _write(path, text):
  with open(path, 'w') as f:
    f.write(text)
  return str(path)


def test_read_ts_reads_channels_labels_and_classes(tmp_path):
  values, labels, classes = series.read_ts(_write(tmp_path / 'a.ts', HEADER + ROWS))
  assert classes == ('up', 'down') and labels == ['up', 'down', 'down']
  np.testing.assert_array_equal(values[0], [[1, 4], [2, 5], [3, 6]])  # [T, C]
  np.testing.assert_array_equal(values[1], [[7, 9], [8, 10]])
  assert values[2].shape == (3, 2)


@pytest.mark.parametrize('body, message', [
    ('1,?,3:4,5,6:up\n', 'missing values'),
    ('1,2,3:4,5:up\n', 'different lengths'),
    ('1,2,3:4,5,6:sideways\n', "labels \\['sideways'\\] are not among"),
    ('1,2,3:up\n1,2,3:4,5,6:down\n', 'earlier examples have 1'),
    ('1,x,3:4,5,6:up\n', "'x' is not a number"),
    ('', 'the @data section is empty'),
])
def test_read_ts_errors_name_the_file_and_problem(tmp_path, body, message):
  path = _write(tmp_path / 'bad.ts', HEADER + body)
  with pytest.raises(data.DatasetError, match=message) as error:
    series.read_ts(path)
  assert 'bad.ts' in str(error.value)


def test_read_ts_refuses_files_without_classes(tmp_path):
  path = _write(tmp_path / 'reg.ts', HEADER.replace('@classLabel true up down', '@targetLabel '
                                                    'true') + '1,2:3,4:0.5\n')
  with pytest.raises(data.DatasetError, match='classLabel'):
    series.read_ts(path)


def test_basic_motions_splits_standardised_channels_and_batches():
  dataset = data.load_dataset_from_config('basic_motions', _config())
  assert data.modality_of('basic_motions') == 'series' and dataset.modality == 'series'
  assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (32, 8, 40)
  assert dataset.num_classes == 4 and dataset.series_shape == (100, 6)
  assert dataset.class_names == ('Standing', 'Running', 'Walking', 'Badminton')
  # Every class is in every split; train + validation is the archive's 40 training series.
  for part in (dataset.train, dataset.validation, dataset.test):
    assert set(np.unique(part.labels)) == {0, 1, 2, 3}
  # Channels standardised with the statistics of the archive's whole training split.
  both = np.concatenate([dataset.train.series, dataset.validation.series])
  np.testing.assert_allclose(both.reshape(-1, 6).mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(both.reshape(-1, 6).std(0), 1, atol=1e-4)
  batch = dataset.train.get_batch(np.asarray([3, 0]))
  assert batch['series'].dtype == np.float32 and batch['series'].shape == (2, 100, 6)
  assert batch['length'].tolist() == [100, 100] and batch['label'].dtype == np.int32
  # The split does not change between loads.
  again = data.load_dataset_from_config('basic_motions', _config())
  np.testing.assert_array_equal(again.validation.series, dataset.validation.series)


def test_variable_lengths_are_padded_with_zeros_and_keep_their_length():
  dataset = data.load_dataset_from_config('japanese_vowels', _config())
  assert dataset.series_shape == (29, 12) and dataset.num_classes == 9
  assert (len(dataset.train) + len(dataset.validation), len(dataset.test)) == (270, 370)
  lengths = dataset.test.lengths
  assert lengths.min() == 7 and lengths.max() <= 29
  short = int(np.argmin(lengths))
  assert np.all(dataset.test.series[short, lengths[short]:] == 0)
  assert np.any(dataset.test.series[short, lengths[short] - 1] != 0)


def _config(data_dir=None):
  import ml_collections  # pylint: disable=g-import-not-at-top
  return ml_collections.ConfigDict({'data_dir': data_dir})


def test_archive_datasets_in_a_directory_and_their_errors(tmp_path):
  folder = tmp_path / 'Toy'
  folder.mkdir()
  _write(folder / 'Toy_TRAIN.ts', HEADER + ROWS * 4)
  _write(folder / 'Toy_TEST.ts', HEADER + ROWS)
  dataset = data.load_dataset_from_config('ts:Toy', _config(str(tmp_path)))
  assert dataset.series_shape == (3, 2) and len(dataset.test) == 3
  assert dataset.test.lengths.tolist() == [3, 2, 3]
  with pytest.raises(data.MissingDatasetError, match='Other_TRAIN.ts and Other_TEST.ts not '
                     'found'):
    data.load_dataset_from_config('ts:Other', _config(str(tmp_path)))
  with pytest.raises(ValueError, match='reads Toy_TRAIN.ts'):
    series.load_series_dataset('ts:Toy')
  with pytest.raises(ValueError, match='unknown dataset .*time series basic_motions'):
    data.check_dataset_name('basic_motion')


def test_the_wheel_carries_every_listed_dataset():
  root = series.sktime_data_dir()
  assert root is not None
  for name in series.SERIES_DATASETS.values():
    for split in ('TRAIN', 'TEST'):
      assert os.path.isfile(os.path.join(root, name, f'{name}_{split}.ts')), name
