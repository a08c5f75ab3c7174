"""Several seeds of one config trained together: `jax.vmap` of the shared step over seeds.

For small models a seed's step leaves the device (or the CPU's cores) partly idle, and every
separate run pays its own compilation; here the S states are stacked on a leading axis and
one compiled program steps them all. Seed s is exactly the run `train_and_evaluate` makes with
`config.seed = s`: its own initialisation, its own data order (its own `BatchIterator`) and
its own augmentation keys (tests/train/test_seeds.py checks the seeds against separate runs).

    results = train_seeds(config, seeds=[0, 1, 2], workdir='runs/x/seeds')

Layout: `<workdir>/checkpoints/` holds the stacked state and every seed's iterator position
(resumed like a single run); `<workdir>/seed_<s>/metrics.jsonl` and `metrics.png` are each
seed's own records.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jssl import data
from jssl.config import ConfigError
from jssl.eval import evaluate as evaluation
from jssl.train import workdir as workdir_lib
from jssl.train.checkpoint import Checkpointer
from jssl.train.loop import NonFiniteLossError
from jssl.train.loop import Run
from jssl.train.loop import create_state
from jssl.train.metrics import MetricsWriter
from jssl.train.metrics import plot_metrics
from jssl.train.step import make_train_step


def stack(trees: Sequence[Any]) -> Any:
  """[tree_0, ..., tree_{S-1}] -> one tree whose leaves have a leading seed axis S."""
  return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def unstack(tree: Any, index: int) -> Any:
  """Seed `index` of a stacked tree."""
  return jax.tree_util.tree_map(lambda leaf: leaf[index], tree)


class SeedsRun:
  """The parts of `Run` for S seeds: stacked state, S iterators, the vmapped step."""

  def __init__(self, config: ml_collections.ConfigDict, seeds: Sequence[int], workdir: str,
               devices=None):
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
      raise ConfigError(f'train_seeds needs distinct seeds, got {seeds}')
    base = config.copy_and_resolve_references()
    base.seed = seeds[0]
    self.run = Run(base, workdir, devices=devices)  # validates, builds data, mesh and method
    if self.run.method.epoch_start is not None:
      raise ConfigError(
          f'{config.method} has an epoch hook (it reclusters or re-initialises between epochs), '
          'which train_seeds cannot vmap over seeds; run the seeds separately (drop '
          '--vmap_seeds).')
    self.seeds = seeds
    self.config = base
    run = self.run
    states = [run.state]
    self.iterators = [run.iterator]
    for seed in seeds[1:]:
      seed_config = base.copy_and_resolve_references()
      seed_config.seed = seed
      states.append(create_state(seed_config, run.method, run.optimizer, run.probe_optimizer,
                                 run.dataset.num_classes, run.dataset.image_shape, run.mesh))
      self.iterators.append(data.GrainIterator(
          run.dataset.train, global_batch_size=base.batch_size, seed=seed,
          process_index=jax.process_index(), process_count=jax.process_count(),
          workers=base.dataset.workers))
    replicated = NamedSharding(run.mesh, P())
    self.state = jax.device_put(stack(states), replicated)
    self.state_sharding = jax.tree_util.tree_map(lambda x: x.sharding, self.state)
    self.batch_sharding = NamedSharding(run.mesh, P(None, 'data'))
    step = make_train_step(run.method, run.optimizer, run.probe_optimizer, run.schedule)
    # No buffer donation (unlike Run): with the state donated, the vmapped BYOL step at
    # batch 256 deadlocked XLA's CPU runtime (every thread waiting, in 3 of 3 tries, at steps
    # 0-2; jax 0.10.2); without it, it ran. The cost is one extra copy of a small state.
    self.train_step = jax.jit(jax.vmap(step), in_shardings=(self.state_sharding,
                                                            self.batch_sharding),
                              out_shardings=(self.state_sharding, replicated))

  @property
  def num_steps(self) -> int:
    return self.run.num_steps

  def advance(self) -> dict[str, jax.Array]:
    """One step of every seed, each on its own next batch; metrics have a leading seed axis."""
    batches = [next(iterator) for iterator in self.iterators]
    stacked = {key: jax.make_array_from_process_local_data(
        self.batch_sharding, np.stack([batch[key] for batch in batches]))
               for key in ('image', 'label', 'index')}
    self.state, metrics = self.train_step(self.state, stacked)
    return metrics

  def evaluate(self, index: int) -> dict[str, float]:
    return evaluation.evaluate(self.run.feature_fn, unstack(self.state, index),
                               self.run.dataset, self.config.eval, self.run.mesh)

  def data_state(self) -> dict[str, Any]:
    return {'seeds': self.seeds, 'iterators': [it.get_state() for it in self.iterators]}

  def set_data_state(self, data_state: dict[str, Any]) -> None:
    if list(data_state['seeds']) != self.seeds:
      raise ConfigError(f'the checkpoint holds seeds {data_state["seeds"]}, not {self.seeds}; '
                        'use a new workdir for other seeds')
    for iterator, state in zip(self.iterators, data_state['iterators']):
      iterator.set_state(state)

  def close(self) -> None:
    for iterator in self.iterators:
      iterator.close()


def _check_finite(state: Any, seeds: Sequence[int]) -> None:
  bad = np.asarray(state.nonfinite_step)
  if np.any(bad >= 0):
    which = [(seed, int(step)) for seed, step in zip(seeds, bad) if step >= 0]
    raise NonFiniteLossError(
        f'the loss or its gradients became non-finite (NaN/inf) for (seed, step) {which}; '
        'training stopped. Lower --config.optimizer.base_learning_rate, add '
        '--config.optimizer.grad_clip_norm=1.0, or check the data.')


def train_seeds(config: ml_collections.ConfigDict, seeds: Sequence[int], workdir: str,
                devices=None) -> list[dict[str, float]]:
  """Trains `config` for every seed in one vmapped program; returns each seed's final metrics.

  Resumes from `<workdir>/checkpoints` like `train_and_evaluate`. Methods with an epoch hook
  (DeepCluster, Local Aggregation) are refused with a ConfigError.
  """
  requested = config
  record = workdir_lib.check_config(requested, workdir)  # refuses another run's workdir
  os.makedirs(workdir, exist_ok=True)
  runner = SeedsRun(config, seeds, workdir, devices=devices)
  workdir_lib.check_state(record, runner.state, workdir)  # the stacked state: one row per seed
  config = runner.config
  checkpointer = Checkpointer(workdir, max_to_keep=config.keep_checkpoints)
  abstract = jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), runner.state)
  restored = checkpointer.restore_latest(abstract, quarantine=record is not None)
  start_step = 0
  if restored is not None:
    runner.state, data_state, start_step = restored
    runner.set_data_state(data_state)
  is_main = jax.process_index() == 0
  seed_dirs = [os.path.join(workdir, f'seed_{seed}') for seed in runner.seeds]
  for seed_dir in seed_dirs:
    os.makedirs(seed_dir, exist_ok=True)
  writers = [MetricsWriter(seed_dir, resume_step=start_step, enabled=is_main)
             for seed_dir in seed_dirs]

  def evaluate_all(step: int, **extra) -> list[dict[str, float]]:
    results = [runner.evaluate(i) for i in range(len(runner.seeds))]
    for writer, result in zip(writers, results):
      writer.write({'step': step, **extra, **result})
    return results

  def save(step: int) -> None:
    workdir_lib.write_record(requested, workdir, runner.state)
    checkpointer.save(step, runner.state, runner.data_state())

  if start_step == 0 and config.eval.at_start:
    evaluate_all(0, random_init=True)
  pending = []

  def flush():
    for logged_step, metrics in jax.device_get(pending):
      for i, writer in enumerate(writers):
        writer.write({'step': logged_step, **{k: float(v[i]) for k, v in metrics.items()}})
    pending.clear()

  try:
    for step in range(start_step, runner.num_steps):
      pending.append((step + 1, runner.advance()))
      done = step + 1
      if done % config.log_every == 0 or done == runner.num_steps:
        flush()
        _check_finite(runner.state, runner.seeds)
      if done % config.checkpoint_every == 0 and done < runner.num_steps:
        flush()  # every record up to the checkpoint on disk: a resume never loses one
        _check_finite(runner.state, runner.seeds)
        save(done)
      if config.eval.every and done % config.eval.every == 0 and done < runner.num_steps:
        flush()  # the steps' records before the evaluation's: metrics.jsonl in step order
        evaluate_all(done)
    _check_finite(runner.state, runner.seeds)
    save(runner.num_steps)
  finally:
    runner.close()
  results = evaluate_all(runner.num_steps)
  for writer in writers:
    writer.close()
  if is_main:
    for writer in writers:
      plot_metrics(writer.path, os.path.join(os.path.dirname(writer.path), 'metrics.png'))
  checkpointer.close()
  return results
