"""A VQ-VAE stage-one workdir for the tests of its prior (jssl/methods/vqvae_prior.py): the run
record and a checkpoint, as `jssl.main` leaves them.

Importable from every test module (tests/ is on sys.path, as for shared_run.py).
"""

import os

import jax

from jssl.train import workdir as workdir_record
from jssl.train.checkpoint import Checkpointer
from jssl.train.loop import Run


def save(run, workdir):
  """Saves `run` (a vqvae `Run`) in `workdir` the way the CLI does: record, then checkpoint."""
  os.makedirs(workdir, exist_ok=True)
  workdir_record.write_record(run.config, workdir, run.state)
  checkpointer = Checkpointer(workdir)
  checkpointer.save(int(run.state.step), run.state, run.iterator.get_state())
  checkpointer.close()
  return workdir


def write_stage_one(config, workdir, steps=0):
  """Trains `config` (a vqvae config) for `steps` steps and `save`s it in `workdir`; returns
  `workdir`."""
  os.makedirs(workdir, exist_ok=True)
  run = Run(config, workdir, devices=jax.devices()[:1])
  try:
    for _ in range(steps):
      run.advance(next(run.iterator))
    return save(run, workdir)
  finally:
    run.iterator.close()
