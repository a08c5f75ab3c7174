"""A VQ-VAE stage-one workdir for the tests of its prior (jssl/methods/vqvae_prior.py): the run
record and a checkpoint, as `jssl.main` leaves them, after `steps` steps of `config`.

Importable from every test module (tests/ is on sys.path, as for shared_run.py).
"""

import os

import jax

from jssl.train import workdir as workdir_record
from jssl.train.checkpoint import Checkpointer
from jssl.train.loop import Run


def write_stage_one(config, workdir, steps=0, evaluate=False):
  """Trains `config` (a vqvae config) for `steps` steps in `workdir` and saves it there the
  way the CLI does (record, then checkpoint). Returns `workdir`; with `evaluate`, the saved
  state (host arrays) and the run's evaluation of it instead."""
  os.makedirs(workdir, exist_ok=True)
  run = Run(config, workdir, devices=jax.devices()[:1])
  try:
    for _ in range(steps):
      run.advance(next(run.iterator))
    workdir_record.write_record(config, workdir, run.state)
    checkpointer = Checkpointer(workdir)
    checkpointer.save(steps, run.state, run.iterator.get_state())
    checkpointer.close()
    if evaluate:
      return jax.device_get(run.state), run.evaluate()
  finally:
    run.iterator.close()
  return workdir
