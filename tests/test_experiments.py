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


def test_gan_stability_plot_averages_the_seeds_of_each_point(tmp_path):
  plot = _script('ablations/gan_stability_plot')
  workdir = tmp_path / 'sweep'
  for point, offset in (('gan.r1_weight=0.0', 0.0), ('gan.r1_weight=10.0', 1.0)):
    for seed, noise in enumerate((-0.5, 0.5)):
      run = workdir / point / f'seed_{seed}'
      os.makedirs(run)
      with open(run / 'metrics.jsonl', 'w') as f:
        for step, value in ((0, 100.0), (500, 10.0 + offset + noise)):
          f.write(json.dumps({'step': step, 'frechet_distance': value}) + '\n')
        f.write(json.dumps({'step': 501, 'loss': 1.0}) + '\n')  # training records: ignored
  assert plot.curves(str(workdir))['gan.r1_weight=10.0'] == {0: [100.0, 100.0],
                                                             500: [10.5, 11.5]}
  out = tmp_path / 'out'
  plot.main([f'--workdir={workdir}', f'--out={out}'])
  table = (out / 'frechet_over_training.md').read_text()
  assert '| gan.r1_weight=10.0 | 100.00 ± 0.00 | 11.00 ± 0.71 |' in table
  with open(out / 'frechet_over_training.png', 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_spectral_embedding_is_the_scaled_leading_eigenvectors():
  import numpy as np  # pylint: disable=g-import-not-at-top
  baselines = _script('gae_baselines')
  rng = np.random.default_rng(0)
  upper = np.triu(rng.random((12, 12)) < 0.4, 1)
  senders, receivers = np.nonzero(upper | upper.T)
  z = baselines.spectral_embedding(12, senders, receivers, 3)
  adjacency = np.zeros((12, 12))
  adjacency[receivers, senders] = 1
  degree = np.maximum(adjacency.sum(1), 1)
  normalised = adjacency / np.sqrt(degree[:, None] * degree[None, :])
  values, vectors = np.linalg.eigh(normalised)
  top = np.argsort(values)[-3:]
  want = vectors[:, top] @ np.diag(np.abs(values[top])) @ vectors[:, top].T
  np.testing.assert_allclose(z @ z.T, want, atol=1e-6)  # sign-free: the products
