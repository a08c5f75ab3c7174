"""Every notebook's code cells run, in order, in one namespace (so notebooks never rot).

A notebook's parameters live in its code cell tagged 'parameters' (papermill's convention);
users run the values written there, and this test runs an injected cell right after it that
sets tiny values, so the suite runs each notebook in well under a minute.
"""

import csv
import glob
import json
import os

import matplotlib
import matplotlib.pyplot as plt
import pytest
import threadpoolctl  # a dependency of scikit-learn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, 'notebooks', '*.ipynb')))


def _ablation_results(tmp_path):
  """Sweep result directories in `jssl.sweep`'s results.csv layout, written by hand.

  One numeric field (a line plot), one field of strings (bars) and two fields (a heat map).
  A real `python -m jssl.sweep` of even 2 points x 2 seeds x 2 steps takes minutes on 2 cores
  (every run compiles its own train step, feature function and probes): too long for a test
  of a viewer. tests/test_sweep.py covers writing the file.
  """
  sweeps = {
      'temperature': (['simclr.temperature'], [
          ((0.1,), 0, 0.80, 0.90), ((0.1,), 1, 0.82, 0.92),
          ((0.2,), 0, 0.84, 0.93), ((0.2,), 1, 0.86, 0.93),
          ((0.5,), 0, 0.78, 0.91), ((0.5,), 1, 0.80, 0.89)]),
      'augmentation': (['augment.compose'], [
          (('crop',), 0, 0.60, 0.80), (('crop+color',), 0, 0.75, 0.88)]),
      'batch_and_lr': (['batch_size', 'optimizer.base_learning_rate'], [
          ((128, 0.001), 0, 0.70, 0.85), ((128, 0.002), 0, 0.72, 0.86),
          ((256, 0.001), 0, 0.74, 0.87), ((256, 0.002), 0, 0.76, 0.88)]),
  }
  dirs = []
  for name, (fields, runs) in sweeps.items():
    directory = tmp_path / 'ablations' / name
    directory.mkdir(parents=True)
    with open(directory / 'results.csv', 'w', newline='') as f:
      writer = csv.writer(f)
      writer.writerow(['point', *fields, 'seed', 'knn_top1', 'linear_top1', 'online_linear_top1'])
      for values, seed, knn, linear in runs:
        point = ','.join(f'{field}={value}' for field, value in zip(fields, values))
        writer.writerow([point, *values, seed, knn, linear, 0.5])
    dirs.append(str(directory))
  with open(tmp_path / 'ablations' / 'temperature' / 'sweep.json', 'w') as f:
    json.dump({'config': 'experiments/configs/simclr.py', 'seeds': [0, 1],
               'overrides': {'num_epochs': 30}}, f)
  return dirs


def _overrides(name, tmp_path):
  """The injected parameters of each notebook."""
  if name == 'quickstart.ipynb':
    return {'NUM_STEPS': 3, 'BATCH_SIZE': 32, 'LINEAR_STEPS': 5, 'TSNE_MAX_ITER': 250,
            'WORKDIR': str(tmp_path / 'quickstart')}
  if name == 'loss_explorer.ipynb':
    return {'NUM_PAIRS': 9}
  if name == 'ablation_viewer.ipynb':
    return {'RESULT_DIRS': _ablation_results(tmp_path), 'OUTPUT_DIR': str(tmp_path / 'plots')}
  return {}


def _check_results(name, namespace, overrides):
  """What each notebook must have computed, beyond running without an exception."""
  if name == 'quickstart.ipynb':
    for value in (namespace['init_knn'], namespace['knn'], namespace['results']['knn_top1'],
                  namespace['results']['linear_top1']):
      assert isinstance(value, float) and 0.0 <= value <= 1.0, value
    assert len(namespace['losses']) == overrides['NUM_STEPS']
    assert all(points.shape == (359, 2) for points in namespace['maps'].values())
  elif name == 'loss_explorer.ipynb':
    # The notebook asserts jax.grad == closed form; make sure that check ran at every temperature.
    assert namespace['checked_temperatures'] == list(namespace['TEMPERATURES'])
  elif name == 'ablation_viewer.ipynb':
    views = namespace['views']
    assert sorted(views) == sorted(overrides['RESULT_DIRS'])
    for directory, view in views.items():
      with open(view['plot'], 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n', directory
      assert view['table'].count('\n') >= 2 + len(view['summary'])
    temperature = views[overrides['RESULT_DIRS'][0]]
    assert '| 0.1 | 2 | 0.810 ± 0.014 |' in temperature['table']  # knn_top1 at 0.1, 2 seeds
    assert '--config.num_epochs=30' in temperature['settings']


def _parameters_cell(cells, name):
  tagged = [i for i, cell in enumerate(cells)
            if cell['cell_type'] == 'code' and 'parameters' in cell['metadata'].get('tags', [])]
  assert len(tagged) == 1, f'{name} needs exactly one code cell tagged "parameters"'
  return tagged[0]


@pytest.mark.parametrize('path', NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, monkeypatch, tmp_path):
  monkeypatch.setenv('MPLBACKEND', 'Agg')
  matplotlib.use('Agg')
  monkeypatch.chdir(REPO)
  name = os.path.basename(path)
  with open(path) as f:
    notebook = json.load(f)
  assert notebook['nbformat'] == 4
  overrides = _overrides(name, tmp_path)
  namespace = {'__name__': '__notebook__'}
  try:
    # One OpenMP / BLAS thread: on cores shared with other test workers, the threads of
    # scikit-learn's t-SNE spin-wait for each other and take 5-10x longer than one alone.
    # (JAX runs on its own thread pool.)
    with threadpoolctl.threadpool_limits(limits=1):
      _run_cells(name, notebook['cells'], overrides, namespace)
    _check_results(name, namespace, overrides)
  finally:
    plt.close('all')


def _run_cells(name, cells, overrides, namespace):
  """Runs the code cells in order in `namespace`, `overrides` right after the parameters."""
  parameters = _parameters_cell(cells, name)
  for index, cell in enumerate(cells):
    if cell['cell_type'] != 'code':
      continue
    assert not cell['outputs'], f'{name} cell {index} stores outputs; clear them'
    source = ''.join(cell['source'])
    exec(compile(source, f'{name}[cell {index}]', 'exec'), namespace)  # pylint: disable=exec-used
    if index == parameters:
      unknown = sorted(set(overrides) - set(namespace))
      assert not unknown, f'{name} has no parameters {unknown}; update _overrides'
      injected = ''.join(f'{key} = {value!r}\n' for key, value in overrides.items())
      exec(compile(injected, f'{name}[injected parameters]', 'exec'), namespace)  # pylint: disable=exec-used


def test_there_is_a_notebook():
  assert NOTEBOOKS
