"""Command line: `python -m jssl.main --config=experiments/configs/simclr.py --workdir=DIR`.

Intentionally short: everything happens in `jssl.train.loop.train_and_evaluate`.
Overrides: `--config.batch_size=512`; variants: `--config=experiments/configs/simclr.py:fashion_mnist`.
Multi-host: pass `--distributed` on every host (calls `jax.distributed.initialize()`, which
reads the coordinator from the cluster environment: SLURM, Cloud TPU, or JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES and JAX_PROCESS_ID).
"""

import functools
import json
import logging
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from jssl import cli

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file, e.g. experiments/configs/simclr.py[:variant].',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints and metrics; '
                               'a run started again with the same workdir resumes.')
_DISTRIBUTED = flags.DEFINE_bool('distributed', False,
                                 'Call jax.distributed.initialize() (multi-host runs).')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
  for noisy in ('absl', 'jax', 'orbax', 'jax._src'):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  import jax  # pylint: disable=g-import-not-at-top
  if _DISTRIBUTED.value:
    jax.distributed.initialize()
  from jssl.config import ConfigError  # pylint: disable=g-import-not-at-top
  from jssl.data.base import MissingDatasetError  # pylint: disable=g-import-not-at-top
  from jssl.train.loop import NonFiniteLossError  # pylint: disable=g-import-not-at-top
  from jssl.train.loop import train_and_evaluate  # pylint: disable=g-import-not-at-top
  try:
    results = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (ConfigError, MissingDatasetError, NonFiniteLossError) as error:
    print(f'jssl: error: {error}', file=sys.stderr)
    sys.exit(2)
  if jax.process_index() == 0:
    print('final ' + json.dumps(results, sort_keys=True))


def run():
  app.run(main, flags_parser=functools.partial(cli.parse_flags, program='jssl'))


if __name__ == '__main__':
  run()
