"""End to end through the CLI, in subprocesses (each with its own device count).

A tiny SimCLR run on digits: 1 device vs 8 simulated devices, SIGKILL and resume, bad input.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, 'experiments', 'configs', 'simclr.py')
TINY = ['--config.batch_size=32', '--config.num_steps=12', '--config.checkpoint_every=3',
        '--config.optimizer.warmup_steps=2', '--config.eval.linear_steps=10',
        '--config.eval.batch_size=256', '--config.model.projection_hidden_dim=32',
        '--config.model.projection_dim=16']


def _env(devices):
  env = dict(os.environ)
  env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}'
  env['JAX_PLATFORMS'] = 'cpu'
  env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
  return env


def _command(workdir, *extra, config=CONFIG):
  return [sys.executable, '-m', 'jssl.main', f'--config={config}', f'--workdir={workdir}',
          *TINY, *extra]


def run_main(workdir, *extra, devices=1, config=CONFIG, check=True):
  result = subprocess.run(_command(workdir, *extra, config=config), env=_env(devices), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
  if check and result.returncode != 0:
    raise AssertionError(f'jssl.main failed ({result.returncode}):\n{result.stderr[-4000:]}')
  return result


def metrics(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


# Session scope: the xdist_group keeps its tests on one worker, but that worker may run other
# modules' tests in between, which would tear a module-scoped fixture down and run it again.
@pytest.fixture(scope='session')
def uninterrupted(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('uninterrupted'))
  result = run_main(workdir)
  return workdir, result


@pytest.mark.xdist_group('simclr_cli')  # shares the `uninterrupted` run
def test_run_writes_metrics_plot_checkpoints_and_reports(uninterrupted):
  workdir, result = uninterrupted
  records = metrics(workdir)
  steps = [r['step'] for r in records if 'loss' in r]
  assert steps == list(range(1, 13))
  evals = [r for r in records if 'knn_top1' in r]
  assert [r['step'] for r in evals] == [0, 12] and evals[0]['random_init']
  for r in evals:
    assert 0.0 <= r['knn_top1'] <= 1.0 and 0.0 <= r['linear_top1'] <= 1.0
  assert os.path.getsize(os.path.join(workdir, 'metrics.png')) > 1000
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['12', '6', '9']
  final = json.loads(result.stdout.strip().splitlines()[-1].removeprefix('final '))
  assert final['knn_top1'] == evals[-1]['knn_top1']


@pytest.mark.xdist_group('simclr_cli')  # shares the `uninterrupted` run
def test_eight_devices_give_the_same_losses_as_one(uninterrupted, tmp_path):
  workdir, _ = uninterrupted
  run_main(str(tmp_path), devices=8)
  one = [r['loss'] for r in metrics(workdir) if 'loss' in r]
  eight = [r['loss'] for r in metrics(str(tmp_path)) if 'loss' in r]
  assert len(one) == len(eight) == 12
  for a, b in zip(one, eight):
    assert abs(a - b) <= 1e-5, (one, eight)


def _run_and_sigkill_after_first_checkpoint(workdir, *extra, config=CONFIG):
  process = subprocess.Popen(_command(workdir, *extra, config=config), env=_env(1), cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  checkpoints = os.path.join(workdir, 'checkpoints')
  deadline = time.time() + 300
  # Kill once the first checkpoint exists and training has gone past it.
  while time.time() < deadline:
    done = [r['step'] for r in metrics(workdir) if 'loss' in r] if os.path.exists(
        os.path.join(workdir, 'metrics.jsonl')) else []
    if os.path.isdir(os.path.join(checkpoints, '3')) and done and max(done) >= 4:
      break
    if process.poll() is not None:
      pytest.fail('the run ended before it could be killed')
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert max(r['step'] for r in metrics(workdir) if 'loss' in r) < 12


@pytest.mark.xdist_group('simclr_cli')  # shares the `uninterrupted` run
def test_sigkill_then_resume_reproduces_the_uninterrupted_run(uninterrupted, tmp_path):
  reference, _ = uninterrupted
  workdir = str(tmp_path)
  _run_and_sigkill_after_first_checkpoint(workdir)
  run_main(workdir)
  assert metrics(workdir) == metrics(reference)  # losses and final metrics, bit for bit


@pytest.mark.parametrize('spec', ['moco.py', 'instdisc.py:digits_nce', 'dino.py'])
def test_sigkill_resume_restores_queues_banks_and_targets(spec, tmp_path):
  """MoCo (key encoder, queue and its pointer), InstDisc (memory bank, NCE's constant Z) and
  DINO (EMA teacher, EMA centre, multi-crop views)."""
  config = os.path.join(REPO, 'experiments', 'configs', spec)
  no_start_eval = '--config.eval.at_start=false'
  reference = str(tmp_path / 'reference')
  run_main(reference, no_start_eval, config=config)
  workdir = str(tmp_path / 'killed')
  _run_and_sigkill_after_first_checkpoint(workdir, no_start_eval, config=config)
  run_main(workdir, no_start_eval, config=config)
  assert metrics(workdir) == metrics(reference)


@pytest.mark.parametrize('extra,devices,expected', [
    (['--config.dataset.name=nope'], 1, "config.dataset.name='nope' is not a known dataset"),
    (['--config.batch_size=36'], 8, 'is not divisible by the number of devices (8)'),
    (['--config.method=nope'], 1, "config.method='nope' is not a known method"),
    (['--config.dataset.name=fashion_mnist', '--config.dataset.data_dir=/nonexistent/fmnist'], 1,
     'apt-get install dataset-fashion-mnist'),
])
def test_bad_input_is_a_clear_error(tmp_path, extra, devices, expected):
  result = run_main(str(tmp_path), *extra, devices=devices, check=False)
  assert result.returncode == 2, result.stderr[-3000:]
  assert expected in result.stderr
  assert 'Traceback' not in result.stderr


def test_unknown_config_field_or_variant_is_a_clear_error(tmp_path):
  result = run_main(str(tmp_path), '--config.bacth_size=64', check=False)
  assert result.returncode == 2
  assert 'unknown config field' in result.stderr and 'Did you mean "batch_size"' in result.stderr
  assert 'Traceback' not in result.stderr
  assert not os.path.exists(os.path.join(str(tmp_path), 'checkpoints'))
  result = run_main(str(tmp_path), config=CONFIG + ':nope', check=False)
  assert result.returncode == 2 and "unknown variant 'nope'" in result.stderr


@pytest.mark.xdist_group('simclr_cli')  # shares the `uninterrupted` run
def test_corrupt_newest_checkpoint_falls_back_and_ends_like_the_clean_run(uninterrupted, tmp_path):
  reference, _ = uninterrupted
  workdir = str(tmp_path / 'run')
  shutil.copytree(reference, workdir)
  newest = os.path.join(workdir, 'checkpoints', '12')
  for root, _, files in os.walk(newest):
    for name in files:
      with open(os.path.join(root, name), 'wb') as f:
        f.write(b'not a checkpoint')
  result = run_main(workdir)
  assert 'checkpoint at step 12' in result.stderr and 'falling back' in result.stderr
  assert os.path.isdir(os.path.join(workdir, 'corrupt_checkpoints', '12'))  # kept, not deleted
  assert metrics(workdir) == metrics(reference)  # resumed from step 9, same losses and metrics


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_checkpoint(tmp_path):
  workdir = str(tmp_path)
  # Step 0 has learning rate 0 (warm-up), so the state after step 1 is finite and saved;
  # then a rate of 1e38 blows the weights up.
  result = run_main(workdir, '--config.optimizer.name=sgd', '--config.checkpoint_every=1',
                    '--config.optimizer.base_learning_rate=1e38', '--config.eval.at_start=false',
                    check=False)
  assert result.returncode == 2, result.stderr[-3000:]
  match = re.search(r'became non-finite \(NaN/inf\) at step (\d+); training stopped and the '
                    r'last good checkpoint is step (\d+)', result.stderr)
  assert match, result.stderr[-3000:]
  bad, good = int(match.group(1)), int(match.group(2))
  assert 1 <= good <= bad
  saved = sorted(int(s) for s in os.listdir(os.path.join(workdir, 'checkpoints')))
  assert saved[-1] == good
