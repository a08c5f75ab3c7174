"""The scripts of experiments/ that turn finished runs into tables and figures."""

import importlib.util
import json
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script(name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, 'experiments',
                                                                    f'{name}.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _write_run(workdir, run, stds):
  os.makedirs(os.path.join(workdir, run))
  with open(os.path.join(workdir, run, 'metrics.jsonl'), 'w') as f:
    f.write(json.dumps({'step': 0, 'knn_top1': 0.5, 'random_init': True}) + '\n')
    for step, std in enumerate(stds, start=1):
      f.write(json.dumps({'step': step, 'loss': 1.0, 'output_std': std, 'rankme': 10 * std})
              + '\n')


def test_collapse_plot_draws_every_pair_and_names_a_missing_run(tmp_path):
  plot = _script('collapse_plot')
  workdir = str(tmp_path / 'runs')
  for _, full, ablation in plot.PAIRS:
    _write_run(workdir, full, [0.06, 0.06, 0.06])
    _write_run(workdir, ablation, [0.06, 0.03, 0.01])
  assert plot.series(workdir, 'simsiam_no_stop_gradient', 'output_std') == ([1, 2, 3],
                                                                            [0.06, 0.03, 0.01])
  out = str(tmp_path / 'collapse.png')
  plot.main([f'--workdir={workdir}', f'--out={out}'])
  with open(out, 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  assert os.path.getsize(out) > 10_000

  os.remove(os.path.join(workdir, 'byol', 'metrics.jsonl'))
  with pytest.raises(SystemExit, match='byol/metrics.jsonl does not exist'):
    plot.main([f'--workdir={workdir}', f'--out={out}'])
