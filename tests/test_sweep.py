"""`python -m jssl.sweep`: grids of points x seeds, resume after a kill, table, CSV and plot."""

import csv
import json
import os
import signal
import time

import numpy as np
import pytest

from cli_fork import launcher
from shared_run import FAST_CODEGEN

from jssl import sweep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--config.num_steps=2', '--config.batch_size=16', '--config.model.widths=(4,8)',
        '--config.model.projection_hidden_dim=16', '--config.model.projection_dim=8',
        '--config.eval.linear_steps=5', '--config.eval.at_start=False',
        '--config.eval.batch_size=256', '--config.optimizer.warmup_steps=1']


def test_parse_sweeps_spans_the_product_in_order():
  points = sweep.parse_sweeps(['a.b=1,2', 'c=x,(3,4)'])
  assert [p.values for p in points] == [
      (('a.b', 1), ('c', 'x')), (('a.b', 1), ('c', (3, 4))),
      (('a.b', 2), ('c', 'x')), (('a.b', 2), ('c', (3, 4)))]
  assert points[1].name == 'a.b=1,c=_3-4_'  # directory-safe
  for bad in (['a'], ['a='], ['a=1,,2'], ['a=1', 'a=2'], []):
    with pytest.raises(sweep.SweepError):
      sweep.parse_sweeps(bad)


def test_point_config_sets_fields_variant_overrides_and_seed():
  [point] = sweep.parse_sweeps(['variant=fashion_mnist'])
  config = sweep.point_config('experiments/configs/simclr.py', point, {'batch_size': 32}, 5)
  assert config.dataset.name == 'fashion_mnist' and config.batch_size == 32 and config.seed == 5
  [point] = sweep.parse_sweeps(['simclr.temperature=1'])  # an int literal for a float field
  config = sweep.point_config('experiments/configs/simclr.py', point, {}, 0)
  assert config.simclr.temperature == 1.0 and isinstance(config.simclr.temperature, float)
  for spec in ('simclr.temprature=0.1', 'nosection.x=1'):
    with pytest.raises(sweep.SweepError, match='not a field|no section'):
      sweep.point_config('experiments/configs/simclr.py', sweep.parse_sweeps([spec])[0], {}, 0)


def _rows(values, metric_by_seed):
  return [{'point': f't={v}', 't': v, 'seed': s, 'knn_top1': metric_by_seed(v, s)}
          for v in values for s in range(3)]


def test_summary_is_mean_and_sample_std_over_seeds(tmp_path):
  rows = _rows([0.1, 1.0], lambda v, s: v + 0.1 * s * s)
  summary = sweep.summarize(rows, ['knn_top1'])
  for entry, v in zip(summary, [0.1, 1.0]):
    values = [v + 0.1 * s * s for s in range(3)]
    assert entry['num_seeds'] == 3
    np.testing.assert_allclose(entry['knn_top1_mean'], np.mean(values))
    np.testing.assert_allclose(entry['knn_top1_std'], np.std(values, ddof=1))
  table = sweep.markdown_table(summary, ['t'], ['knn_top1'], num_seeds=4)
  assert '| 0.1 | 3 of 4 | 0.267 ± 0.208 |' in table
  # Every plot layout renders: numeric line, heat map of two fields, bars of categories.
  two = [{'point': f'{a},{b}', 'a': a, 'b': b, 'seed': s, 'knn_top1': 0.5}
         for a in ('x', 'y') for b in (1, 2) for s in range(2)]
  cats = [{'point': c, 'c': c, 'seed': 0, 'knn_top1': 0.5} for c in ('crop', 'crop+color')]
  for name, data in (('line', rows), ('heat', two), ('bars', cats)):
    path = sweep.plot_results(data, str(tmp_path / f'{name}.png'), metrics=['knn_top1'])
    with open(path, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def _sweep_command(workdir):
  """The arguments of `python -m jssl.sweep` (run by tests/cli_fork.py)."""
  return ['--config=experiments/configs/simclr.py',
          '--sweep=simclr.temperature=0.1,0.2,0.5', '--seeds=3', '--vmap_seeds',
          f'--workdir={workdir}', *TINY]


def _env():
  env = dict(os.environ)
  env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count=1 {FAST_CODEGEN}'
  env['JAX_PLATFORMS'] = 'cpu'
  env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
  return env


def test_sweep_cli_killed_and_rerun_finishes_only_the_missing_points(tmp_path):
  workdir = str(tmp_path / 'sweep')
  first_point = os.path.join(workdir, 'simclr.temperature=0.1')
  finals = [os.path.join(first_point, f'seed_{s}', 'final.json') for s in range(3)]
  process = launcher().popen(_sweep_command(workdir), cwd=REPO, env=_env(),
                             module='jssl.sweep')
  deadline = time.time() + 300
  while not all(os.path.exists(f) for f in finals):
    assert process.poll() is None, process.communicate()[1][-3000:]
    assert time.time() < deadline, 'the first point did not finish in 300 s'
    time.sleep(0.2)
  process.send_signal(signal.SIGKILL)
  process.communicate()
  stamps = [os.stat(f).st_mtime_ns for f in finals]
  assert not os.path.exists(os.path.join(workdir, 'simclr.temperature=0.5', 'seed_0',
                                         'final.json'))

  result = launcher().run(_sweep_command(workdir), cwd=REPO, env=_env(), module='jssl.sweep')
  assert result.returncode == 0, result.stderr[-3000:]
  assert '[1/3] simclr.temperature=0.1: done earlier, skipped' in result.stdout
  assert '[3/3] simclr.temperature=0.5: seeds [0, 1, 2]' in result.stdout
  assert [os.stat(f).st_mtime_ns for f in finals] == stamps  # not trained again

  with open(os.path.join(workdir, 'results.csv')) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 9
  assert {(r['simclr.temperature'], r['seed']) for r in rows} == {
      (t, s) for t in ('0.1', '0.2', '0.5') for s in '012'}
  assert all(0.0 <= float(r['knn_top1']) <= 1.0 for r in rows)
  loaded = sweep.load_results(workdir)
  assert [r['simclr.temperature'] for r in loaded][::3] == [0.1, 0.2, 0.5]
  with open(os.path.join(workdir, 'summary.md')) as f:
    table = f.read().splitlines()
  assert len(table) == 2 + 3 and all(' ± ' in line for line in table[2:])
  summary = sweep.summarize(loaded, ['knn_top1'])
  want = np.mean([float(r['knn_top1']) for r in rows[:3]])
  np.testing.assert_allclose(summary[0]['knn_top1_mean'], want)
  with open(os.path.join(workdir, 'plot.png'), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  with open(os.path.join(workdir, 'sweep.json')) as f:
    assert json.load(f)['seeds'] == [0, 1, 2]


def test_sweep_cli_reports_bad_input(tmp_path):
  for args, message in (
      (['--sweep=simclr.temperature'], "must look like 'field=value1"),
      (['--sweep=simclr.temprature=0.1,0.2'], 'not a field of this config'),
      (['--sweep=augment.compose=crop,foo', '--config.num_steps=1'], 'augment.compose'),
      ([], '--sweep are required')):
    result = launcher().run(['--config=experiments/configs/simclr.py', f'--workdir={tmp_path}',
                             *args], cwd=REPO, env=_env(), module='jssl.sweep', timeout=300)
    assert result.returncode == 2, (args, result.stderr[-2000:])
    assert message in result.stderr, (args, result.stderr[-2000:])
