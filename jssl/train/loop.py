"""The shared train loop: `train_and_evaluate(config, workdir)`.

Nothing here is method-specific: a method (`jssl.methods`) supplies its init, loss and encode
functions; this module owns the data, the mesh, the jitted step, checkpoints, logging and
evaluation.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jssl import data
from jssl import methods
from jssl.config import _require  # pylint: disable=protected-access
from jssl.config import validate_config
from jssl.eval import evaluate as evaluation
from jssl.eval import finetune
from jssl.train import optim
from jssl.train import workdir as workdir_lib
from jssl.train.checkpoint import Checkpointer
from jssl.train.metrics import MetricsWriter
from jssl.train.metrics import plot_metrics
from jssl.train.state import TrainState
from jssl.train.step import init_probe
from jssl.train.step import check_players
from jssl.train.step import make_train_step

log = logging.getLogger(__name__)

# Step t uses fold_in(root, t); initialisation and epoch hooks use indices no step reaches.
_INIT_STREAM = 2**31 - 1
_EPOCH_STREAM = 2**31 - 2


class NonFiniteLossError(RuntimeError):
  """Training produced a non-finite loss or gradient."""


def make_mesh(devices=None) -> Mesh:
  """A 1-D ('data',) mesh over `devices` (default: every device of every process)."""
  return Mesh(np.asarray(jax.devices() if devices is None else devices), ('data',))


def total_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  return int(config.num_steps) if config.num_steps > 0 else int(config.num_epochs * steps_per_epoch)


def create_state(config, method, optimizer, probe_optimizer, num_classes, image_shape, mesh,
                 *, abstract_only: bool = False):
  """Initialises the TrainState, replicated over the mesh, inside one jit.

  `image_shape` is (H, W, C) of the stored images, or None for other modalities (the method's
  `init` then receives None as its example input and builds its own from the config).
  `abstract_only` returns its `jax.ShapeDtypeStruct`s (with shardings) and compiles nothing.
  """
  replicated = NamedSharding(mesh, P())

  def init():
    root = jax.random.key(config.seed)
    dummy = None
    if image_shape is not None:
      dummy = jnp.zeros((2, config.dataset.image_size, config.dataset.image_size,
                         image_shape[-1]), jnp.float32)
    params, batch_stats, extra = method.init(jax.random.fold_in(root, _INIT_STREAM), dummy)
    probe_params = init_probe(method.features_dim, num_classes)
    return TrainState(
        step=jnp.zeros((), jnp.int32), rng=jax.random.key_data(root), params=params,
        batch_stats=batch_stats, opt_state=optimizer.init(params), extra=extra,
        probe_params=probe_params, probe_opt_state=probe_optimizer.init(probe_params),
        nonfinite_step=jnp.full((), -1, jnp.int32))

  abstract = jax.eval_shape(init)
  if abstract_only:
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), abstract)
  return jax.jit(init, out_shardings=jax.tree_util.tree_map(lambda _: replicated, abstract))()


def load_run_dataset(config: ml_collections.ConfigDict) -> data.Dataset:
  """The config's dataset; a file that is there but unusable is a `data.DatasetError`."""
  return _load(config.dataset.name, config.dataset)


def load_eval_dataset(config: ml_collections.ConfigDict, dataset: data.Dataset) -> data.Dataset:
  """The dataset the probes run on: `config.eval.dataset`, or the training one when it is ''.

  A text evaluation dataset is read with the training dataset's tokenizer (the vocabulary
  the encoder was trained with).
  """
  name = config.eval.get('dataset') or ''
  if not name or name == dataset.name:
    return dataset
  return _load(name, config.dataset, tokenizer=getattr(dataset, 'tokenizer', None))


def _load(name: str, dataset_config: ml_collections.ConfigDict, **options) -> data.Dataset:
  try:
    return data.load_dataset_from_config(name, dataset_config, **options)
  except data.MissingDatasetError:
    raise
  except data.DatasetError:
    raise
  except ValueError as error:  # the loaders' messages name the file and the fix
    raise data.DatasetError(f'dataset {name!r}: {error}') from None


def batch_spec(source: data.Source) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """{field: (per-example shape, dtype)} of a source's batches, 'index' included."""
  example = source.get_batch(np.zeros((1,), np.int64))
  spec = {key: (value.shape[1:], value.dtype) for key, value in example.items()}
  spec['index'] = ((), np.dtype(np.int32))
  return spec


def _fitting_batch(num_examples: int, device_count: int) -> int:
  """The largest global batch <= num_examples that every device and process can share."""
  multiple = int(np.lcm(device_count, jax.process_count()))
  return max(multiple, num_examples // multiple * multiple)


class Run:
  """Builds everything a run needs from a validated config (usable from notebooks too).

  `devices` restricts the mesh to some devices (single-process only; default: all).
  `abstract=True` builds everything but the state's values: `state` holds
  `jax.ShapeDtypeStruct`s, nothing is compiled, and `trace()` checks every program's shapes
  (what the config tests do for the variants they do not train).
  """

  def __init__(self, config: ml_collections.ConfigDict, workdir: str, devices=None, *,
               abstract: bool = False):
    device_count = jax.device_count() if devices is None else len(devices)
    validate_config(config, device_count=device_count, process_count=jax.process_count())
    self.config = config
    self.workdir = workdir
    self.dataset = load_run_dataset(config)
    num_train = len(self.dataset.train)
    _require(num_train >= config.batch_size,
             f'config.batch_size={config.batch_size} is larger than the training split of '
             f'{config.dataset.name!r} ({num_train} examples): every step takes one full '
             f'batch. Use --config.batch_size={_fitting_batch(num_train, device_count)} or less.')
    self.mesh = make_mesh(devices)
    replicated = NamedSharding(self.mesh, P())
    self.eval_dataset = load_eval_dataset(config, self.dataset)
    self.modality = self.dataset.modality
    self.image_shape = self.dataset.image_shape if self.modality == 'image' else None
    # Arrays every step reads whole (a graph's features and edges), replicated; {} for images.
    self.constants = jax.device_put(data.device_constants(self.dataset), replicated)
    self.iterator = data.GrainIterator(
        self.dataset.train, global_batch_size=config.batch_size, seed=config.seed,
        process_index=jax.process_index(), process_count=jax.process_count(),
        workers=config.dataset.workers)
    self.num_steps = total_steps(config, self.iterator.steps_per_epoch)
    self.method = methods.METHODS[config.method](config, methods.TrainInfo(
        num_examples=len(self.dataset.train), num_classes=self.eval_dataset.num_classes,
        image_channels=self.image_shape[-1] if self.image_shape else 0,
        num_steps=self.num_steps, dataset=self.dataset))
    self.optimizer, self.schedule = optim.create_optimizer(config, self.num_steps)
    self.player_optimizers = None
    if self.method.players is not None:
      self.player_optimizers = optim.create_player_optimizers(config, self.method.players,
                                                              self.num_steps)
      self.optimizer = optim.players_optimizer(self.method.players, self.player_optimizers)
    self.probe_optimizer = optax.adam(config.online_probe.learning_rate)
    self.state = create_state(config, self.method, self.optimizer, self.probe_optimizer,
                              self.eval_dataset.num_classes, self.image_shape, self.mesh,
                              abstract_only=abstract)
    if self.method.players is not None:
      check_players(self.method, self.state.params)
    finetune.check_protocols(config, self.method, device_count)
    self.state_sharding = jax.tree_util.tree_map(lambda x: x.sharding, self.state)
    self.batch_sharding = NamedSharding(self.mesh, P('data'))
    self.train_step = jax.jit(
        make_train_step(self.method, self.optimizer, self.probe_optimizer, self.schedule,
                        player_optimizers=self.player_optimizers),
        in_shardings=(self.state_sharding, self.batch_sharding, replicated),
        out_shardings=(self.state_sharding, replicated),
        donate_argnums=0)
    self.feature_fn = None
    if self.method.probe:
      self.feature_fn = evaluation.make_feature_fn(
          evaluation.represent_fn(self.method, config.dataset.image_size), self.mesh)
    self.epoch_start = None
    if self.method.epoch_start is not None:
      shardings = (self.state_sharding.params, self.state_sharding.opt_state,
                   self.state_sharding.extra)
      self.epoch_start = jax.jit(self.method.epoch_start, out_shardings=shardings)

  def device_batch(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    return {key: jax.make_array_from_process_local_data(self.batch_sharding, value)
            for key, value in batch.items()}

  def start_epoch(self, epoch: int) -> None:
    """Runs the method's `epoch_start` hook (if any) on the current state.

    The hook sees the frozen encoder's features of the whole training split (evaluation
    view, row i = example i) and a key that depends only on the epoch, so a run resumed at an
    epoch boundary repeats exactly what the uninterrupted run did.
    """
    if self.epoch_start is None:
      return
    features = None
    if self.method.epoch_features is None or self.method.epoch_features(epoch):
      features, _, _ = evaluation.extract(self.feature_fn, self.state, self.dataset.train,
                                          batch_size=self.config.eval.batch_size,
                                          mesh=self.mesh, constants=self.constants)
      features = jax.device_put(features, NamedSharding(self.mesh, P()))
    root = jax.random.wrap_key_data(self.state.rng)
    rng = jax.random.fold_in(jax.random.fold_in(root, _EPOCH_STREAM), epoch)
    params, opt_state, extra = self.epoch_start(
        self.state.params, self.state.opt_state, self.state.extra, features,
        jnp.asarray(epoch, jnp.int32), rng)
    self.state = self.state.replace(params=params, opt_state=opt_state, extra=extra)

  def advance(self, batch: dict[str, np.ndarray], step: int | None = None) -> dict[str, Any]:
    """One training step on a host batch from `self.iterator`; returns the step's metrics.

    Before the first step of an epoch, runs the method's `epoch_start` hook. `step` is the
    number of steps taken so far (read from the state when None, which waits for the device).
    """
    if self.epoch_start is not None:
      step = int(self.state.step) if step is None else step
      if step % self.iterator.steps_per_epoch == 0:
        self.start_epoch(step // self.iterator.steps_per_epoch)
    self.state, metrics = self.train_step(self.state, self.device_batch(batch), self.constants)
    return metrics

  def trace(self) -> dict[str, Any]:
    """Traces (never compiles) the train step, the epoch hook and the feature function on
    abstract inputs of this config's shapes; returns their abstract outputs.

    Catches every shape, dtype and tracing error of the config's programs for the cost of
    tracing them (a step's compilation on CPU costs 10-100 times more).
    """
    def abstract_batch(source, batch_size):
      return {key: jax.ShapeDtypeStruct((batch_size, *shape), dtype, sharding=self.batch_sharding)
              for key, (shape, dtype) in batch_spec(source).items()}

    batch = abstract_batch(self.dataset.train, self.config.batch_size // jax.process_count())
    state, metrics = jax.eval_shape(self.train_step, self.state, batch, self.constants)
    features = None
    if self.feature_fn is not None:
      eval_batch = abstract_batch(self.eval_dataset.test, self.config.eval.batch_size)
      eval_batch.pop('index')
      eval_batch.pop('label', None)
      features = jax.eval_shape(self.feature_fn, self.state.params, self.state.batch_stats,
                                self.state.probe_params, eval_batch, self.constants)
    hook = None
    if self.epoch_start is not None:
      train_features = jax.ShapeDtypeStruct((len(self.dataset.train), self.method.features_dim),
                                            jnp.float32)
      rng = jax.eval_shape(lambda: jax.random.key(0))
      hook = jax.eval_shape(self.epoch_start, self.state.params, self.state.opt_state,
                            self.state.extra, train_features, jax.ShapeDtypeStruct((), jnp.int32),
                            rng)
    return {'state': state, 'metrics': metrics, 'features': features, 'epoch_start': hook}

  def evaluate(self) -> dict[str, float]:
    """The probes (when the method has a representation) and the method's own evaluation."""
    return evaluation.evaluate_run(self)


def _check_finite(state: TrainState, checkpointer: Checkpointer) -> None:
  bad = int(state.nonfinite_step)
  if bad >= 0:
    steps = checkpointer.all_steps()
    kept = (f'the last good checkpoint is step {steps[-1]} in {checkpointer.directory}'
            if steps else 'no checkpoint had been written yet')
    raise NonFiniteLossError(
        f'the loss or its gradients became non-finite (NaN/inf) at step {bad}; training '
        f'stopped and {kept}. Lower --config.optimizer.base_learning_rate, add '
        '--config.optimizer.grad_clip_norm=1.0, or check the data.')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       *, progress: bool = True) -> dict[str, float]:
  """Trains (resuming from `workdir` if it holds checkpoints), evaluates, returns final metrics.

  A workdir that holds a run with a different config (or train state) is refused with
  `jssl.train.workdir.WorkdirMismatchError` before anything in it is changed.
  """
  record = workdir_lib.check_config(config, workdir)
  os.makedirs(workdir, exist_ok=True)
  run = Run(config, workdir)
  workdir_lib.check_state(record, run.state, workdir)
  is_main = jax.process_index() == 0
  checkpointer = Checkpointer(workdir, max_to_keep=config.keep_checkpoints)
  abstract = jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), run.state)
  # Without a record (a workdir from before records were kept) a checkpoint that fails to
  # restore may be a readable one of another config: refuse rather than set it aside.
  restored = checkpointer.restore_latest(abstract, quarantine=record is not None)
  start_step = 0
  if restored is not None:
    run.state, data_state, start_step = restored
    run.iterator.set_state(data_state)
    log.info('resumed from step %d in %s', start_step, checkpointer.directory)
  writer = MetricsWriter(workdir, resume_step=start_step, enabled=is_main)

  if start_step == 0 and config.eval.at_start:
    results = run.evaluate()
    writer.write({'step': 0, 'random_init': True, **results})
    log.info('random-init encoder: %s', _fmt(results))
  elif 0 < start_step < run.num_steps and config.eval.every and start_step % config.eval.every == 0:
    # The run may have died between saving this checkpoint and writing its evaluation.
    writer.write({'step': start_step, **run.evaluate()})

  def save(step: int) -> None:
    workdir_lib.write_record(config, workdir, run.state)  # before the checkpoint it describes
    checkpointer.save(step, run.state, run.iterator.get_state())

  bar = None
  if progress and is_main:
    import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm.tqdm(total=run.num_steps, initial=start_step, desc=config.method,
                    dynamic_ncols=True)
  pending: list[tuple[int, dict[str, Any]]] = []  # device metrics not yet written
  images_per_log, tick = 0, time.perf_counter()

  def flush():
    nonlocal images_per_log, tick
    for step, metrics in pending:
      record = {'step': step, **{k: float(v) for k, v in jax.device_get(metrics).items()}}
      writer.write(record)
    if bar is not None and pending:
      elapsed = time.perf_counter() - tick
      bar.set_postfix(loss=f'{record["loss"]:.4f}', img_s=f'{images_per_log / elapsed:.0f}')
      bar.update(len(pending))
    pending.clear()
    images_per_log, tick = 0, time.perf_counter()

  try:
    for step in range(start_step, run.num_steps):
      metrics = run.advance(next(run.iterator), step)
      pending.append((step + 1, metrics))
      images_per_log += config.batch_size
      done = step + 1
      if done % config.log_every == 0 or done == run.num_steps:
        flush()
        _check_finite(run.state, checkpointer)
      if done % config.checkpoint_every == 0 and done < run.num_steps:
        flush()  # every record up to the checkpoint on disk: a resume never loses one
        _check_finite(run.state, checkpointer)
        save(done)
      if config.eval.every and done % config.eval.every == 0 and done < run.num_steps:
        flush()  # the steps' records before the evaluation's: metrics.jsonl in step order
        results = run.evaluate()
        writer.write({'step': done, **results})
        log.info('step %d: %s', done, _fmt(results))
    flush()
    _check_finite(run.state, checkpointer)
    save(run.num_steps)
  finally:
    if bar is not None:
      bar.close()
    run.iterator.close()

  results = run.evaluate()
  writer.write({'step': run.num_steps, **results})
  writer.close()
  if is_main:
    plot_metrics(writer.path, os.path.join(workdir, 'metrics.png'))
  checkpointer.close()
  return results


def _fmt(results: dict[str, float]) -> str:
  return ', '.join(f'{k}={v:.4f}' for k, v in results.items() if isinstance(v, float))
