"""Command line: `python -m jssl.main --config=experiments/configs/simclr.py --workdir=DIR`.

Intentionally short: everything happens in `jssl.train.loop.train_and_evaluate`.
Overrides: `--config.batch_size=512`; variants: `--config=experiments/configs/simclr.py:fashion_mnist`.
Multi-host: run the same command on every process with `--distributed`, plus
`--coordinator_address=HOST:PORT --num_processes=N --process_id=I` (I = 0..N-1); under SLURM
or on a Cloud TPU slice the three may be omitted and are detected (README, "Multi-host").
Bad input (config, data, workdir, flags) ends in one `jssl: error: ...` line and exit status 2.
"""

import functools
import json
import logging
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from jssl import cli

PROGRAM = 'jssl'
_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file, e.g. experiments/configs/simclr.py[:variant].',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints and metrics; '
                               'a run started again with the same workdir resumes.')
_DISTRIBUTED = flags.DEFINE_bool('distributed', False,
                                 'Multi-process run: call jax.distributed.initialize().')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'With --distributed: HOST:PORT of the process with '
    '--process_id=0 (omit under SLURM / Cloud TPU to auto-detect).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None,
                                      'With --distributed: the number of processes.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None,
                                   'With --distributed: this process, 0..num_processes-1.')
flags.mark_flags_as_required(['config', 'workdir'])


def _start_processes() -> None:
  from jssl import distributed  # pylint: disable=g-import-not-at-top
  settings = (_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  if not _DISTRIBUTED.value:
    if any(v is not None for v in settings):
      cli.fail(PROGRAM, '--coordinator_address, --num_processes and --process_id need '
               '--distributed.')
    return
  try:
    distributed.initialize(*settings)
  except (ValueError, RuntimeError) as error:
    cli.fail(PROGRAM, str(error))


def main(argv):
  if len(argv) > 1:
    cli.fail(PROGRAM, f'unexpected arguments {argv[1:]}: every setting is a flag '
             '(--config=..., --workdir=..., --config.FIELD=VALUE).')
  logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
  for noisy in ('absl', 'jax', 'orbax', 'jax._src'):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  _start_processes()
  cli.check_workdir(PROGRAM, _WORKDIR.value)
  import jax  # pylint: disable=g-import-not-at-top
  from jssl.config import ConfigError  # pylint: disable=g-import-not-at-top
  from jssl.data.base import DatasetError  # pylint: disable=g-import-not-at-top
  from jssl.data.base import MissingDatasetError  # pylint: disable=g-import-not-at-top
  from jssl.train.loop import NonFiniteLossError  # pylint: disable=g-import-not-at-top
  from jssl.train.loop import train_and_evaluate  # pylint: disable=g-import-not-at-top
  try:
    results = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (ConfigError, DatasetError, MissingDatasetError, NonFiniteLossError) as error:
    cli.fail(PROGRAM, str(error))
  if jax.process_index() == 0:
    print('final ' + json.dumps(results, sort_keys=True))


def run():
  app.run(main, flags_parser=functools.partial(cli.parse_flags, program=PROGRAM))


if __name__ == '__main__':
  run()
