"""End to end through the CLI, one process per run (each with its own device count).

A tiny SimCLR run on digits: 1 device vs 8 simulated devices vs 2 processes x 4 devices
(multi-host on localhost), SIGKILL and resume (one process and two), a corrupt checkpoint,
a changed config refused, a non-finite loss. Each run is a `python -m jssl.main` process of
its own, forked from one that has done the imports (tests/cli_fork.py); they share the
suite's persistent compilation cache (tests/conftest.py), so a program is compiled once for
all of them.
"""

import json
import os
import re
import shutil
import signal
import socket
import time

import psutil
import pytest

from cli_fork import launcher
from shared_run import FAST_CODEGEN
from shared_run import once
from tensorboard_check import assert_tensorboard_equals_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, 'experiments', 'configs', 'simclr.py')
TINY = ['--config.batch_size=32', '--config.num_steps=12', '--config.checkpoint_every=3',
        '--config.optimizer.warmup_steps=2', '--config.eval.linear_steps=10',
        '--config.eval.linear_l2_grid=(1e-4,)',
        '--config.eval.batch_size=256', '--config.model.projection_hidden_dim=32',
        '--config.model.projection_dim=16']


def _env(devices):
  env = dict(os.environ)
  env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices} {FAST_CODEGEN}'
  env['JAX_PLATFORMS'] = 'cpu'
  env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
  return env


def _command(workdir, *extra, config=CONFIG):
  """The arguments of `python -m jssl.main` (run by tests/cli_fork.py, see there)."""
  return [f'--config={config}', f'--workdir={workdir}', *TINY, *extra]


def run_main(workdir, *extra, devices=1, config=CONFIG, check=True):
  result = launcher().run(_command(workdir, *extra, config=config), env=_env(devices), cwd=REPO)
  if check and result.returncode != 0:
    raise AssertionError(f'jssl.main failed ({result.returncode}):\n{result.stderr[-4000:]}')
  return result


def metrics(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def _output(result):
  return {'stdout': result.stdout, 'stderr': result.stderr}


@pytest.fixture(scope='session')
def uninterrupted(tmp_path_factory):
  """(workdir, output) of the reference run, made once for every worker."""
  return once(tmp_path_factory, 'uninterrupted', lambda workdir: _output(run_main(workdir)))


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
  final = json.loads(result['stdout'].strip().splitlines()[-1].removeprefix('final '))
  assert final['knn_top1'] == evals[-1]['knn_top1']
  assert_tensorboard_equals_metrics(workdir)


@pytest.fixture(scope='session')
def eight_devices(tmp_path_factory):
  return once(tmp_path_factory, 'eight_devices',
              lambda workdir: _output(run_main(workdir, devices=8)))[0]


def losses(workdir):
  return [r['loss'] for r in metrics(workdir) if 'loss' in r]


def test_eight_devices_give_the_same_losses_as_one(uninterrupted, eight_devices):
  workdir, _ = uninterrupted
  one, eight = losses(workdir), losses(eight_devices)
  assert len(one) == len(eight) == 12
  for a, b in zip(one, eight):
    assert abs(a - b) <= 1e-5, (one, eight)


def _sigkill_after_first_checkpoint(processes, workdir):
  """SIGKILLs `processes` (one run) once the first checkpoint exists and training is past it."""
  deadline = time.time() + 300
  while time.time() < deadline:
    done = [r['step'] for r in metrics(workdir) if 'loss' in r] if os.path.exists(
        os.path.join(workdir, 'metrics.jsonl')) else []
    if os.path.isdir(os.path.join(workdir, 'checkpoints', '3')) and done and max(done) >= 4:
      break
    if any(p.poll() is not None for p in processes):
      pytest.fail('the run ended before it could be killed')
    time.sleep(0.05)
  children = [child for p in processes for child in psutil.Process(p.pid).children(True)]
  for p in processes:
    p.send_signal(signal.SIGKILL)
  for p in processes:
    p.communicate()
  assert max(r['step'] for r in metrics(workdir) if 'loss' in r) < 12
  return children


def _assert_gone(processes):
  """Processes a killed run started (the input pipeline's workers) end with it."""
  _, alive = psutil.wait_procs(processes, timeout=10)
  assert not alive, [p.cmdline() for p in alive]


def _run_and_sigkill_after_first_checkpoint(workdir, *extra, config=CONFIG):
  process = launcher().popen(_command(workdir, *extra, config=config), env=_env(1), cwd=REPO,
                             capture=False)
  return _sigkill_after_first_checkpoint([process], workdir)


@pytest.mark.parametrize('workers', ['0', '2'])
def test_sigkill_then_resume_reproduces_the_uninterrupted_run(uninterrupted, tmp_path, workers):
  """Also with the batches read by 2 worker processes (grain), killed with them and resumed
  with 1: the reference run read them in its own process."""
  reference, _ = uninterrupted
  workdir = str(tmp_path)
  children = _run_and_sigkill_after_first_checkpoint(workdir,
                                                     f'--config.dataset.workers={workers}')
  if workers != '0':
    assert len(children) >= int(workers)  # the workers (and multiprocessing's tracker)
  _assert_gone(children)
  run_main(workdir, f'--config.dataset.workers={min(int(workers), 1)}')
  assert metrics(workdir) == metrics(reference)  # losses and final metrics, bit for bit
  assert_tensorboard_equals_metrics(workdir)  # event files rewritten: no step twice


# Per-config flags that shrink the models and their evaluations to test size.
_SMALL = {
    'gan.py:digits': ('--config.gan.generator_width=8', '--config.gan.discriminator_width=8',
                      '--config.gan.eval_samples=64', '--config.gan.classifier_steps=10',
                      '--config.gan.discriminator_steps=2'),
    'vae.py': ('--config.vae.encoder_width=4', '--config.vae.decoder_width=4',
               '--config.vae.latent_dim=4', '--config.vae.iwae_samples=4',
               '--config.vae.iwae_chunk=4', '--config.vae.eval_examples=64'),
    'dae.py': ('--config.dae.encoder_width=4', '--config.dae.decoder_width=4',
               '--config.dae.latent_dim=4', '--config.dae.eval_examples=64'),
    'made.py': ("--config.made.hidden_sizes=(16,)", '--config.made.num_masks=2',
                '--config.made.eval_examples=64', '--config.made.num_samples=2'),
    'pixelcnn.py': ('--config.pixelcnn.features=4', '--config.pixelcnn.num_layers=2',
                    '--config.pixelcnn.first_kernel_size=3', '--config.pixelcnn.eval_examples=64',
                    '--config.pixelcnn.num_samples=2'),
    'vqvae.py': ('--config.vqvae.width=4', '--config.vqvae.code_dim=4',
                 '--config.vqvae.num_codes=8', '--config.vqvae.num_residual=1',
                 '--config.vqvae.eval_examples=64',
                 # 5 steps an epoch, so the resumed run restarts dead codes at epochs 1 and 2
                 '--config.batch_size=256', '--config.vqvae.dead_threshold=100'),
    'cpc.py': ('--config.cpc.context_dim=8', '--config.cpc.encoder_widths=(8,8)',
               '--config.cpc.encoder_kernel_sizes=(3,3)', '--config.cpc.encoder_strides=(1,2)',
               '--config.cpc.prediction_steps=2', '--config.cpc.crop_length=20',
               '--config.eval.knn_k=5'),
    'bert.py': ('--config.dataset.max_length=8', '--config.model.num_layers=1',
                '--config.model.hidden_dim=16', '--config.model.mlp_dim=32',
                '--config.model.max_length=19', '--config.bert.eval_examples=64',
                '--config.eval.dataset=fortunes', '--config.eval.batch_size=512'),
}


@pytest.mark.parametrize('spec', ['moco.py', 'instdisc.py:digits_nce', 'dino.py',
                                  'gan.py:digits', 'vae.py', 'dae.py', 'made.py', 'pixelcnn.py',
                                  'vqvae.py', 'bert.py', 'dgi.py:toy', 'cpc.py'])
def test_sigkill_resume_restores_queues_banks_and_targets(spec, tmp_path):
  """MoCo (key encoder, queue and its pointer), InstDisc (memory bank, NCE's constant Z),
  DINO (EMA teacher, EMA centre, multi-crop views), the GAN (two players, two optimizer
  states, two discriminator updates per step), the VAE (binarization keys), the DAE (its
  corruption keys), MADE (a mask drawn per step), the PixelCNN, BERT (pairs and
  masks drawn on the device from the step's key), the VQ-VAE (EMA codebook statistics and code
  usage), DGI (a corruption per step, the graph as device constants) and CPC on time series
  (a random window of each series per step)."""
  config = os.path.join(REPO, 'experiments', 'configs', spec)
  flags = ('--config.eval.at_start=false', *_SMALL.get(spec, ()))
  reference = str(tmp_path / 'reference')
  run_main(reference, *flags, config=config)
  workdir = str(tmp_path / 'killed')
  _run_and_sigkill_after_first_checkpoint(workdir, *flags, config=config)
  run_main(workdir, *flags, config=config)
  assert metrics(workdir) == metrics(reference)
  assert_tensorboard_equals_metrics(workdir)
  if spec == 'vqvae.py':
    assert max(r.get('code_restarts', 0) for r in metrics(workdir)) > 0


# Bad command lines (config, flags, workdir, data, processes): tests/test_cli_errors.py.


def test_corrupt_newest_checkpoint_falls_back_and_ends_like_the_clean_run(uninterrupted, tmp_path):
  reference, _ = uninterrupted
  workdir = str(tmp_path / 'run')
  shutil.copytree(reference, workdir)
  newest = os.path.join(workdir, 'checkpoints', '12')
  for root, _, files in os.walk(newest):  # as if the disk filled up during the save
    for name in files:
      path = os.path.join(root, name)
      os.truncate(path, os.path.getsize(path) // 2)
  result = run_main(workdir)
  assert 'checkpoint at step 12' in result.stderr and 'falling back' in result.stderr
  assert os.path.isdir(os.path.join(workdir, 'corrupt_checkpoints', '12'))  # kept, not deleted
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['12', '6', '9']
  assert metrics(workdir) == metrics(reference)  # resumed from step 9, same losses and metrics
  assert 'Traceback' not in result.stderr and 'Event loop is closed' not in result.stderr


def _snapshot(directory):
  """{relative path: bytes} of every file under `directory`."""
  files = {}
  for root, _, names in os.walk(directory):
    for name in names:
      path = os.path.join(root, name)
      with open(path, 'rb') as f:
        files[os.path.relpath(path, directory)] = f.read()
  return files


def test_changed_config_is_refused_and_nothing_in_the_workdir_changes(uninterrupted, tmp_path):
  reference, _ = uninterrupted
  workdir = str(tmp_path / 'run')
  shutil.copytree(reference, workdir)
  before = _snapshot(workdir)
  result = run_main(workdir, '--config.model.projection_dim=32', '--config.seed=5', check=False)
  assert result.returncode == 2, result.stderr[-3000:]
  message = result.stderr[result.stderr.index('jssl: error: '):]
  assert f'the workdir {workdir} holds a run with a different config' in message
  assert 'model.projection_dim: 16 -> 32' in message and 'seed: 0 -> 5' in message
  assert 'its original config' in message and 'new --workdir' in message
  assert 'Traceback' not in result.stderr
  assert _snapshot(workdir) == before  # checkpoints, metrics.jsonl, everything byte-identical
  # Fields listed as resumable may change (tests/train/test_workdir.py has the rules): the
  # finished run is re-evaluated with other evaluation settings, its steps untouched.
  run_main(workdir, '--config.eval.knn_k=20', '--config.log_every=4')
  assert losses(workdir) == losses(reference)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['12', '6', '9']
  evals = [r for r in metrics(workdir) if 'knn_top1' in r]
  assert [r['step'] for r in evals] == [0, 12]


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


def _free_port():
  with socket.socket() as sock:
    sock.bind(('127.0.0.1', 0))
    return sock.getsockname()[1]


def _two_processes(workdir, *extra):
  """Starts 2 processes x 4 simulated CPU devices of one run through the CLI."""
  address = f'127.0.0.1:{_free_port()}'
  return [launcher().popen(
      _command(workdir, '--distributed', f'--coordinator_address={address}',
               '--num_processes=2', f'--process_id={i}', *extra), env=_env(4), cwd=REPO)
      for i in range(2)]


def _finish(processes):
  outputs = [p.communicate(timeout=600) for p in processes]
  for p, (_, err) in zip(processes, outputs):
    assert p.returncode == 0, err[-4000:]
  return outputs


@pytest.fixture(scope='session')
def two_processes(tmp_path_factory):
  return once(tmp_path_factory, 'two_processes',
              lambda workdir: _finish(_two_processes(workdir)))


def test_two_processes_equal_eight_devices_and_resume_exactly_after_sigkill(two_processes,
                                                                         eight_devices, tmp_path):
  """One test, so that the killed run never waits on another worker for its reference."""
  workdir, outputs = two_processes
  many, one = losses(workdir), losses(eight_devices)
  assert len(many) == len(one) == 12
  assert max(abs(a - b) for a, b in zip(many, one)) <= 1e-5, (many, one)
  finals = [line for line in outputs[0][0].splitlines() if line.startswith('final ')]
  assert len(finals) == 1 and not any(line.startswith('final ') for line in
                                      outputs[1][0].splitlines())  # process 0 reports
  final = json.loads(finals[0].removeprefix('final '))
  want = [r for r in metrics(eight_devices) if 'knn_top1' in r][-1]
  for key in ('knn_top1', 'linear_top1', 'online_linear_top1'):
    assert abs(final[key] - want[key]) <= 1e-6, (key, final, want)
  # One set of checkpoints, written together by both processes.
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['12', '6', '9']
  assert not os.path.exists(os.path.join(workdir, 'corrupt_checkpoints'))
  # SIGKILL both processes after the first checkpoint; restart both: the uninterrupted run.
  killed = str(tmp_path / 'killed')
  _sigkill_after_first_checkpoint(_two_processes(killed), killed)
  _finish(_two_processes(killed))
  assert metrics(killed) == metrics(workdir)


def test_load_encoder_gives_the_features_the_run_was_scored_with(uninterrupted):
  """`jssl.load_encoder(workdir)` on the CLI run: its features' kNN accuracy is the run's."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import jssl  # pylint: disable=g-import-not-at-top
  from jssl.data import load_dataset  # pylint: disable=g-import-not-at-top
  from jssl.eval.knn import knn_top1  # pylint: disable=g-import-not-at-top
  workdir, _ = uninterrupted
  encoder = jssl.load_encoder(workdir)
  assert encoder.step == 12 and encoder.config.method == 'simclr'
  digits = load_dataset('digits')
  train = digits.train.get_batch(np.arange(len(digits.train)))
  test = digits.test.get_batch(np.arange(len(digits.test)))
  train_features, test_features = encoder(train['image']), encoder(test['image'])
  assert test_features.shape == (len(digits.test), encoder.features_dim)
  np.testing.assert_array_equal(encoder(test['image'][:5]), test_features[:5])
  final = metrics(workdir)[-1]
  accuracy = knn_top1(train_features, train['label'], test_features, test['label'],
                      num_classes=10, k=encoder.config.eval.knn_k,
                      temperature=encoder.config.eval.knn_temperature)
  # The run scored on 1 device, this loads on 8: float rounding may move a neighbour.
  assert abs(accuracy - final['knn_top1']) <= 2 / len(digits.test), (accuracy, final)
  with pytest.raises(FileNotFoundError, match='no trained run'):
    jssl.load_encoder(os.path.join(workdir, 'checkpoints'))
