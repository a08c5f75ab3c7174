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


def make_feature_fn(encode: Callable, mesh: jax.sharding.Mesh, image_size: int) -> Callable:
  """jit of (params, batch_stats, probe_params, uint8 images) -> (features, probe logits)."""
  replicated = NamedSharding(mesh, P())

  def features(params, batch_stats, probe_params, images):
    h = encode(params, batch_stats, augment.eval_view(images, image_size)).astype(jnp.float32)
    return h, h @ probe_params['kernel'] + probe_params['bias']

  return jax.jit(features, out_shardings=(replicated, replicated))


def extract(feature_fn: Callable, state: Any, source: Source, *, batch_size: int,
            mesh: jax.sharding.Mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Features [N, F], online-probe logits [N, C] and labels [N] of a whole split.

  Batches are global arrays sharded over the mesh (the last one padded to a full batch), so
  every device and every process takes part; each process reads its own rows.
  """
  sharding = NamedSharding(mesh, P('data'))
  process_count, process_index = jax.process_count(), jax.process_index()
  local = batch_size // process_count
  n = len(source)
  feats, logits, labels = [], [], []
  for start in range(0, n, batch_size):
    indices = np.arange(start, start + batch_size) % n  # wrap-around padding, dropped below
    mine = indices[process_index * local:(process_index + 1) * local]
    batch = source.get_batch(mine)
    images = jax.make_array_from_process_local_data(sharding, batch['image'])
    h, z = feature_fn(state.params, state.batch_stats, state.probe_params, images)
    count = min(batch_size, n - start)
    feats.append(np.asarray(h)[:count])
    logits.append(np.asarray(z)[:count])
    # Every process needs every label; with one process the batch just read has them all.
    labels.append((batch['label'] if process_count == 1
                   else source.get_batch(indices)['label'])[:count])
  return np.concatenate(feats), np.concatenate(logits), np.concatenate(labels)


def evaluate(feature_fn: Callable, state: Any, dataset: Dataset, eval_config: ml_collections.ConfigDict,
             mesh: jax.sharding.Mesh) -> dict[str, float]:
  """kNN (train bank -> test), offline linear probe (train/val/test), online probe (test)."""
  splits = {name: extract(feature_fn, state, getattr(dataset, name),
                          batch_size=eval_config.batch_size, mesh=mesh)
            for name in ('train', 'validation', 'test')}
  (train_f, _, train_y), (val_f, _, val_y), (test_f, test_logits, test_y) = (
      splits['train'], splits['validation'], splits['test'])
  results = {
      'knn_top1': knn_top1(train_f, train_y, test_f, test_y, num_classes=dataset.num_classes,
                           k=eval_config.knn_k, temperature=eval_config.knn_temperature),
      **linear_probe(train_f, train_y, val_f, val_y, test_f, test_y,
                     num_classes=dataset.num_classes, l2_grid=tuple(eval_config.linear_l2_grid),
                     num_steps=eval_config.linear_steps),
      'online_linear_top1': float(np.mean(np.argmax(test_logits, -1) == test_y)),
  }
  return results
