"""Evaluation of a training state: frozen features of each split, kNN and linear probes."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jssl import augment
from jssl.data.base import Dataset
from jssl.data.base import Source
from jssl.eval.knn import knn_top1
from jssl.eval.linear import linear_probe


def represent_fn(method: Any, image_size: int) -> Callable:
  """(params, batch_stats, batch, constants) -> [B, F]: the method's `represent`, or by
  default its `encode` of the evaluation view (resize / centre crop) of `batch['image']`."""
  if method.represent is not None:
    return method.represent

  def represent(params, batch_stats, batch, constants):
    del constants  # images need none
    return method.encode(params, batch_stats, augment.eval_view(batch['image'], image_size))

  return represent


def make_feature_fn(represent: Callable, mesh: jax.sharding.Mesh) -> Callable:
  """jit of (params, batch_stats, probe_params, batch, constants) -> (features, probe logits).

  `batch` is a dict of a source's fields without 'label' (uint8 images, tokens, node ids, ...);
  `represent` is what `represent_fn` returns.
  """
  replicated = NamedSharding(mesh, P())

  def features(params, batch_stats, probe_params, batch, constants):
    h = represent(params, batch_stats, batch, constants).astype(jnp.float32)
    return h, h @ probe_params['kernel'] + probe_params['bias']

  return jax.jit(features, out_shardings=(replicated, replicated))


def extract(feature_fn: Callable, state: Any, source: Source, *, batch_size: int,
            mesh: jax.sharding.Mesh, constants: Any = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Features [N, F], online-probe logits [N, C] and labels [N] of a whole split.

  Batches are global arrays sharded over the mesh (the last one padded to a full batch), so
  every device and every process takes part; each process reads its own rows.
  """
  sharding = NamedSharding(mesh, P('data'))
  process_count, process_index = jax.process_count(), jax.process_index()
  local = batch_size // process_count
  n = len(source)
  constants = {} if constants is None else constants
  feats, logits, labels = [], [], []
  for start in range(0, n, batch_size):
    indices = np.arange(start, start + batch_size) % n  # wrap-around padding, dropped below
    mine = indices[process_index * local:(process_index + 1) * local]
    batch = source.get_batch(mine)
    inputs = {key: jax.make_array_from_process_local_data(sharding, value)
              for key, value in batch.items() if key != 'label'}
    h, z = feature_fn(state.params, state.batch_stats, state.probe_params, inputs, constants)
    count = min(batch_size, n - start)
    feats.append(np.asarray(h)[:count])
    logits.append(np.asarray(z)[:count])
    # Every process needs every label; with one process the batch just read has them all.
    labels.append((batch['label'] if process_count == 1
                   else source.get_batch(indices)['label'])[:count])
  return np.concatenate(feats), np.concatenate(logits), np.concatenate(labels)


def probe_splits(dataset: Dataset) -> dict[str, Source]:
  """The sources the probes fit on (train), choose on (validation) and report on (test).

  For a graph, the probe's training nodes are its train mask (`dataset.probe_train`), not
  every node the self-supervised loss saw.
  """
  return {'train': getattr(dataset, 'probe_train', dataset.train),
          'validation': dataset.validation, 'test': dataset.test}


def evaluate(feature_fn: Callable, state: Any, dataset: Dataset, eval_config: ml_collections.ConfigDict,
             mesh: jax.sharding.Mesh, constants: Any = None,
             splits_out: dict | None = None) -> dict[str, float]:
  """kNN (train bank -> test), offline linear probe (train/val/test), online probe (test).

  `splits_out`, when given, receives {split: (features, labels)} for later evaluations.
  """
  splits = {name: extract(feature_fn, state, source, batch_size=eval_config.batch_size,
                          mesh=mesh, constants=constants)
            for name, source in probe_splits(dataset).items()}
  (train_f, _, train_y), (val_f, _, val_y), (test_f, test_logits, test_y) = (
      splits['train'], splits['validation'], splits['test'])
  if splits_out is not None:
    splits_out.update({name: (f, y) for name, (f, _, y) in splits.items()})
  results = {
      'knn_top1': knn_top1(train_f, train_y, test_f, test_y, num_classes=dataset.num_classes,
                           k=eval_config.knn_k, temperature=eval_config.knn_temperature),
      **linear_probe(train_f, train_y, val_f, val_y, test_f, test_y,
                     num_classes=dataset.num_classes, l2_grid=tuple(eval_config.linear_l2_grid),
                     num_steps=eval_config.linear_steps),
      'online_linear_top1': float(np.mean(np.argmax(test_logits, -1) == test_y)),
  }
  return results


def evaluate_run(run: Any) -> dict[str, float]:
  """Every evaluation a `jssl.train.loop.Run` offers at its current state.

  The kNN / linear / online probes on `run.eval_dataset` when the method has a representation
  (`Method.probe`), the fine-tuning protocols `config.eval.finetune` names, then the method's
  own `evaluate` hook (likelihood, samples, perplexity, ...).
  """
  config = run.config
  results: dict[str, float] = {}
  splits: dict = {}
  if run.feature_fn is not None:
    results.update(evaluate(run.feature_fn, run.state, run.eval_dataset, config.eval, run.mesh,
                            run.constants, splits_out=splits))
    if not run.method.online_probe:
      results.pop('online_linear_top1')
    protocols = tuple(config.eval.get('finetune', ()) or ())
    if protocols:
      from jssl.eval import finetune  # pylint: disable=g-import-not-at-top
      results.update(finetune.run_protocols(run, protocols))
  if run.method.evaluate is not None:
    from jssl.methods.base import EvalContext  # pylint: disable=g-import-not-at-top
    context = EvalContext(state=run.state, dataset=run.dataset, eval_dataset=run.eval_dataset,
                          constants=run.constants, mesh=run.mesh, config=config,
                          workdir=run.workdir, step=int(run.state.step), features=splits)
    results.update({key: float(value) for key, value in run.method.evaluate(context).items()})
  return results


def global_array(host: np.ndarray, mesh: jax.sharding.Mesh) -> jax.Array:
  """A [B, ...] host array that every process holds whole, as a global array sharded over
  the mesh's 'data' axis (each process contributes its own contiguous rows)."""
  sharding = NamedSharding(mesh, P('data'))
  local = host.shape[0] // jax.process_count()
  start = jax.process_index() * local
  return jax.make_array_from_process_local_data(sharding, host[start:start + local])


def replicated_jit(fn: Callable, mesh: jax.sharding.Mesh, **kwargs) -> Callable:
  """`jax.jit(fn)` whose outputs are replicated, so every process can read them whole."""
  return jax.jit(fn, out_shardings=NamedSharding(mesh, P()), **kwargs)
