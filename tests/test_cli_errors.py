"""Bad command lines through the real CLI (`python -m jssl.main`, one process each).

Each must end with exit status 2 and one short `jssl: error: ...` message that names the
problem, with no traceback. None of them compiles anything: they fail while the flags, the
config, the workdir or the data are checked. Their processes are forked by tests/cli_fork.py
from one that has imported jax and jssl (not jssl.main, and no JAX backend), which saves the
~2.5 s of imports each would pay; each child runs jssl.main as `__main__` on its own argv.
"""

import gzip
import os
import subprocess

import numpy as np
import pytest

from cli_fork import launcher

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIMCLR = os.path.join(REPO, 'experiments', 'configs', 'simclr.py')
GAN = os.path.join(REPO, 'experiments', 'configs', 'gan.py') + ':digits'
VAE = os.path.join(REPO, 'experiments', 'configs', 'vae.py')


def _write_idx(path, array, *, truncate_to=None):
  header = bytes([0, 0, 8, array.ndim]) + b''.join(int(d).to_bytes(4, 'big') for d in array.shape)
  content = header + array.astype(np.uint8).tobytes()
  with gzip.open(path + '.gz', 'wb') as f:
    f.write(content[:truncate_to])


@pytest.fixture(scope='module')
def bad_files(tmp_path_factory):
  """Broken config files, a file where a workdir should be, and a truncated Fashion-MNIST."""
  root = tmp_path_factory.mktemp('bad')
  files = {
      'syntax.py': 'def get_config(:\n',
      'import.py': 'import a_module_that_does_not_exist\n',
      'no_get_config.py': 'X = 1\n',
      'raises.py': 'def get_config(arg=None):\n  return {}["missing_key"]\n',
      'not_a_config.py': 'def get_config(arg=None):\n  return 5\n',
      'partial.py': ('import ml_collections\n\ndef get_config(arg=None):\n'
                     '  config = ml_collections.ConfigDict()\n  config.method = "simclr"\n'
                     '  return config\n'),
      'a_file': 'not a directory\n',
  }
  for name, text in files.items():
    (root / name).write_text(text)
  os.makedirs(root / 'a_directory.py')
  rng = np.random.default_rng(0)
  fashion = root / 'fashion'
  os.makedirs(fashion)
  for prefix, count in (('train', 64), ('t10k', 16)):
    _write_idx(str(fashion / f'{prefix}-images-idx3-ubyte'),
               rng.integers(0, 256, size=(count, 28, 28)),
               truncate_to=1000 if prefix == 'train' else None)
    _write_idx(str(fashion / f'{prefix}-labels-idx1-ubyte'), np.arange(count) % 10)
  return root


def _cases(root):
  """(id, command-line arguments, simulated devices, a phrase the message must contain)."""
  work = f'--workdir={root}/work'
  simclr = [f'--config={SIMCLR}', work]
  distributed = [*simclr, '--distributed']
  return [
      ('missing-config-file', ['--config=experiments/configs/nope.py', work], 1,
       "config file 'experiments/configs/nope.py' does not exist"),
      ('config-is-a-directory', [f'--config={root}/a_directory.py', work], 1, 'is a directory'),
      ('config-syntax-error', [f'--config={root}/syntax.py', work], 1,
       'SyntaxError: invalid syntax'),
      ('config-import-error', [f'--config={root}/import.py', work], 1,
       "No module named 'a_module_that_does_not_exist'"),
      ('config-without-get-config', [f'--config={root}/no_get_config.py', work], 1,
       'defines no get_config'),
      ('get-config-raises', [f'--config={root}/raises.py', work], 1,
       "raised KeyError: 'missing_key'"),
      ('get-config-returns-no-configdict', [f'--config={root}/not_a_config.py', work], 1,
       "returned 'int', not an ml_collections.ConfigDict"),
      ('config-lacks-base-fields', [f'--config={root}/partial.py', work], 1,
       'the config lacks the fields'),
      ('unknown-variant', [f'--config={SIMCLR}:nope', work], 1, "unknown variant 'nope'"),
      ('unknown-field', [*simclr, '--config.bacth_size=64'], 1, 'Did you mean "batch_size"'),
      ('bad-field-value', [*simclr, '--config.batch_size=abc'], 1,
       "flag --config.batch_size=abc: invalid literal for int()"),
      ('unknown-flag', [*simclr, '--nope=1'], 1, 'Unknown command line flag'),
      ('missing-workdir', [f'--config={SIMCLR}'], 1, '--workdir'),
      ('missing-config', [work], 1, '--config'),
      ('positional-argument', [*simclr, 'extra'], 1, "unexpected arguments ['extra']"),
      ('process-flags-without-distributed', [*simclr, '--num_processes=2'], 1,
       'need --distributed'),
      ('incomplete-distributed-settings', [*distributed, '--num_processes=2'], 1,
       '--coordinator_address, --process_id missing'),
      ('process-id-out-of-range', [*distributed, '--coordinator_address=127.0.0.1:1234',
                                   '--num_processes=2', '--process_id=2'], 1,
       '--process_id=2 must be in [0, 1]'),
      ('bad-coordinator-address', [*distributed, '--coordinator_address=localhost',
                                   '--num_processes=2', '--process_id=0'], 1,
       "--coordinator_address='localhost' is not HOST:PORT"),
      ('distributed-without-cluster', distributed, 1, 'no cluster was detected'),
      ('workdir-is-a-file', [f'--config={SIMCLR}', f'--workdir={root}/a_file'], 1,
       'is a file, not a directory'),
      ('workdir-not-writable', [f'--config={SIMCLR}', '--workdir=/proc/jssl_test/work'], 1,
       'cannot be written'),
      ('unknown-method', [*simclr, '--config.method=nope'], 1,
       "config.method='nope' is not a known method"),
      ('unknown-dataset', [*simclr, '--config.dataset.name=nope'], 1,
       "config.dataset.name='nope' is not a known dataset"),
      ('batch-not-divisible-by-devices', [*simclr, '--config.batch_size=36'], 8,
       'is not divisible by the number of devices (8)'),
      ('batch-larger-than-the-split', [*simclr, '--config.batch_size=100000'], 1,
       "larger than the training split of 'digits' (1259 examples)"),
      ('no-steps', [*simclr, '--config.num_steps=0', '--config.num_epochs=0'], 1,
       'the run has no steps'),
      ('dataset-missing', [*simclr, '--config.dataset.name=fashion_mnist',
                           '--config.dataset.data_dir=/nonexistent/fmnist'], 1,
       'apt-get install dataset-fashion-mnist'),
      ('dataset-truncated', [*simclr, '--config.dataset.name=fashion_mnist',
                             f'--config.dataset.data_dir={root}/fashion'], 1,
       'train-images-idx3-ubyte.gz is not a valid IDX file'),
      ('gan-no-critic-steps', [f'--config={GAN}', work, '--config.gan.discriminator_steps=0'], 1,
       'config.gan.discriminator_steps=0: the discriminator must take at least 1 update'),
      ('gan-player-optimizer-unknown', [f'--config={GAN}', work,
                                        '--config.gan.generator_optimizer.name=adam'], 1,
       "config.gan.generator_optimizer.name='adam' is unknown"),
      ('vae-views-not-the-stored-size', [f'--config={VAE}', work, '--config.dataset.image_size=16'],
       1, 'set --config.dataset.image_size=8'),
      ('finetune-unknown-protocol', [*simclr, "--config.eval.finetune=('semi_5pct',)"], 1,
       "unknown ['semi_5pct']"),
      ('text-dataset-for-an-image-method', [*simclr, '--config.dataset.name=fortunes'], 1,
       "config.dataset.name='fortunes' is a text dataset, but simclr trains on image data"),
      ('graph-probe-for-an-image-method', [*simclr, '--config.eval.dataset=polblogs'], 1,
       "config.eval.dataset='polblogs' is a graph dataset"),
  ]


def _run_all(cases):
  """Every case's result (returncode, stdout, stderr), each a `python -m jssl.main` process of
  its own, forked by tests/cli_fork.py after the imports they all share (see there), four at
  a time."""
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
  results, running = [], []
  for _, args, devices, _ in cases:
    if len(running) == 4:
      results.append(_finish(*running.pop(0)))
    case_env = dict(env, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
    running.append((args, launcher().popen(args, env=case_env, cwd=REPO)))
  results.extend(_finish(*r) for r in running)
  return results


def _finish(args, process):
  stdout, stderr = process.communicate(timeout=300)
  return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def test_bad_command_lines_end_in_one_clean_message(bad_files):
  cases = _cases(bad_files)
  assert len(cases) >= 20
  results = _run_all(cases)
  problems = []
  for (name, _, _, expected), result in zip(cases, results):
    # Log lines of libraries (a TFDS warning) may come before it; the message ends stderr.
    message = result.stderr[result.stderr.find('jssl: error: '):].strip()
    if (result.returncode != 2 or 'Traceback' in result.stderr or expected not in message or
        result.stderr.count('jssl: error: ') != 1 or len(message.splitlines()) > 10):
      problems.append(f'{name}: exit {result.returncode}, stderr:\n{result.stderr[-1500:]}')
  assert not problems, '\n\n'.join(problems)
  assert not os.path.exists(bad_files / 'work' / 'checkpoints')  # nothing ran
