"""Fine-tuning protocols: the pre-trained encoder unfrozen under a linear head, trained on the
labelled training split ('finetune') or on a class-balanced 1 % / 10 % of it ('semi_1pct',
'semi_10pct': the semi-supervised protocol of SimCLR's section 7 / BYOL's table 2, with the
subset fixed by `config.eval.finetune_seed`).

Adam (`config.eval.finetune_learning_rate`) on encoder + head for `config.eval.finetune_steps`
steps of `config.eval.finetune_batch_size` examples drawn from the subset; image methods see
the first view of their own augmentation (the papers fine-tune with crops and flips). The
validation split is scored four times during training; the test accuracy reported
(`finetune_top1`, `semi_1pct_top1`, `semi_10pct_top1`) is that of the best of them (early
stopping on validation; test labels never choose anything).
"""

from __future__ import annotations

import types
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jssl import augment
from jssl import models
from jssl.config import ConfigError
from jssl.eval import evaluate as evaluation

PROTOCOLS = {'finetune': 1.0, 'semi_1pct': 0.01, 'semi_10pct': 0.1}


def balanced_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
  """Sorted indices of round(fraction * n_c) examples (at least 1) of every class c, drawn
  without replacement by `np.random.default_rng(seed)`; every index for fraction 1."""
  labels = np.asarray(labels)
  if fraction >= 1.0:
    return np.arange(labels.size)
  rng = np.random.default_rng(seed)
  chosen = []
  for label in np.unique(labels[labels >= 0]):
    members = np.flatnonzero(labels == label)
    count = max(1, int(round(fraction * members.size)))
    chosen.append(rng.choice(members, size=count, replace=False))
  return np.sort(np.concatenate(chosen))


def check_protocols(config, method, device_count: int) -> None:
  """Raises ConfigError for unknown protocol names, a batch the devices cannot share, or a
  method that cannot be fine-tuned (checked before training starts)."""
  protocols = tuple(config.eval.get('finetune', ()) or ())
  if not protocols:
    return
  unknown = [p for p in protocols if p not in PROTOCOLS]
  if unknown:
    raise ConfigError(f'config.eval.finetune={protocols!r}: unknown {unknown}; choose from '
                      f'{sorted(PROTOCOLS)}.')
  batch = config.eval.finetune_batch_size
  if batch < 1 or batch % device_count:
    raise ConfigError(f'config.eval.finetune_batch_size={batch} must be a positive multiple of '
                      f'the number of devices ({device_count}).')
  if config.eval.finetune_steps < 1:
    raise ConfigError(f'config.eval.finetune_steps={config.eval.finetune_steps} must be >= 1.')
  if method.finetune is None and not method.views:
    raise ConfigError(f'{method.name} has no fine-tuning function (Method.finetune) and no image '
                      'encoder to fine-tune; drop --config.eval.finetune.')


def _image_finetune(run) -> Callable:
  """The default `Method.finetune`: the config's image encoder on `params['encoder']`, in
  training mode, on the method's first augmented view of uint8 images."""
  encoder = models.encoder_from_config(run.config.model)
  view = run.method.views[0]

  def finetune(params, batch_stats, batch, rng):
    images = augment.augment_views(rng, batch['image'], (view,))[0]
    features, updates = encoder.apply(
        {'params': params['encoder'], 'batch_stats': batch_stats['encoder']}, images,
        train=True, mutable=['batch_stats'])
    return features, {**batch_stats, 'encoder': updates['batch_stats']}

  return finetune


def finetune_protocol(run, name: str) -> dict[str, float]:
  """One protocol on `run`'s current encoder; returns {'<name>_top1', '<name>_val_top1'}
  (`finetune_top1` for 'finetune')."""
  config = run.config.eval
  method = run.method
  splits = evaluation.probe_splits(run.eval_dataset)
  train = splits['train']
  labels = train.get_batch(np.arange(len(train)))['label']
  subset = balanced_subset(labels, PROTOCOLS[name], config.finetune_seed)
  num_classes = run.eval_dataset.num_classes
  tune = method.finetune or _image_finetune(run)
  if 'encoder' not in run.state.params:
    raise ConfigError(f'{method.name}: fine-tuning updates params["encoder"], which this '
                      'method does not have.')
  trainable = {'encoder': run.state.params['encoder'],
               'head': {'kernel': jnp.zeros((method.features_dim, num_classes), jnp.float32),
                        'bias': jnp.zeros((num_classes,), jnp.float32)}}
  tx = optax.adam(config.finetune_learning_rate)
  frozen_params, batch_stats = run.state.params, run.state.batch_stats

  def step(trainable, batch_stats, opt_state, batch, rng):
    def loss_fn(trainable):
      params = {**frozen_params, 'encoder': trainable['encoder']}
      features, new_stats = tune(params, batch_stats, batch, rng)
      logits = features.astype(jnp.float32) @ trainable['head']['kernel'] + trainable['head']['bias']
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()
      return loss, new_stats

    (_, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
    updates, opt_state = tx.update(grads, opt_state, trainable)
    return optax.apply_updates(trainable, updates), new_stats, opt_state

  step = jax.jit(step, donate_argnums=(2,))
  opt_state = tx.init(trainable)
  rng = np.random.default_rng(config.finetune_seed + 1)
  key = jax.random.key(config.finetune_seed)
  represent = evaluation.make_feature_fn(
      evaluation.represent_fn(method, run.config.dataset.image_size), run.mesh)

  def scored(trainable, batch_stats, split):
    state = types.SimpleNamespace(params={**frozen_params, 'encoder': trainable['encoder']},
                                  batch_stats=batch_stats, probe_params=trainable['head'])
    _, logits, y = evaluation.extract(represent, state, splits[split],
                                      batch_size=config.batch_size, mesh=run.mesh,
                                      constants=run.constants)
    return float(np.mean(np.argmax(logits, -1) == y))

  checkpoints = set(np.linspace(0, config.finetune_steps, 5).astype(int)[1:])
  best = None
  for i in range(1, config.finetune_steps + 1):
    indices = rng.choice(subset, size=config.finetune_batch_size,
                         replace=subset.size < config.finetune_batch_size)
    host = train.get_batch(indices)
    batch = {k: evaluation.global_array(v, run.mesh) for k, v in host.items()}
    trainable, batch_stats, opt_state = step(trainable, batch_stats, opt_state, batch,
                                             jax.random.fold_in(key, i))
    if i in checkpoints:
      val = scored(trainable, batch_stats, 'validation')
      if best is None or val > best[0]:
        best = (val, jax.device_get(trainable), jax.device_get(batch_stats))
  val, trainable, batch_stats = best
  prefix = 'finetune' if name == 'finetune' else name
  return {f'{prefix}_top1': scored(trainable, batch_stats, 'test'),
          f'{prefix}_val_top1': val, f'{prefix}_examples': float(subset.size)}


def run_protocols(run, protocols) -> dict[str, Any]:
  """`finetune_protocol` for each name in `protocols`, merged."""
  results = {}
  for name in protocols:
    results.update(finetune_protocol(run, name))
  return results
