"""Optimizers and learning-rate schedules built from the config.

The learning rate follows the linear scaling rule of SimCLR/BYOL: the peak rate is
`base_learning_rate * batch_size / 256`, reached by a linear warm-up and followed by a
cosine decay to zero over the run. Weight decay (and LARS's trust ratio) apply only to
conv/dense kernels: biases and normalisation parameters are excluded, as in SimCLR and BYOL.
"""

from __future__ import annotations

from typing import Any, Callable

import ml_collections
import optax

from jssl.models import weight_decay_mask

OPTIMIZERS = ('lars', 'sgd', 'adamw')


def learning_rate_schedule(config: ml_collections.ConfigDict,
                           total_steps: int) -> Callable[[Any], Any]:
  """Linear warm-up to the scaled peak rate, then cosine decay to 0 at `total_steps`."""
  opt = config.optimizer
  peak = opt.base_learning_rate * config.batch_size / 256.0
  warmup = min(int(opt.warmup_steps), max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak, warmup_steps=warmup,
      decay_steps=max(total_steps, warmup + 1), end_value=0.0)


def create_optimizer(config: ml_collections.ConfigDict,
                     total_steps: int) -> tuple[optax.GradientTransformation, Callable]:
  """Returns (optimizer, schedule) for `config.optimizer.name` in OPTIMIZERS."""
  opt = config.optimizer
  schedule = learning_rate_schedule(config, total_steps)
  if opt.name == 'lars':
    tx = optax.lars(
        learning_rate=schedule, weight_decay=opt.weight_decay,
        weight_decay_mask=weight_decay_mask, trust_coefficient=opt.trust_coefficient,
        trust_ratio_mask=weight_decay_mask, momentum=opt.momentum, eps=0.0)
  elif opt.name == 'sgd':
    tx = optax.chain(
        optax.add_decayed_weights(opt.weight_decay, mask=weight_decay_mask),
        optax.sgd(schedule, momentum=opt.momentum, nesterov=False))
  elif opt.name == 'adamw':
    tx = optax.adamw(schedule, weight_decay=opt.weight_decay, mask=weight_decay_mask)
  else:
    raise ValueError(f'unknown optimizer {opt.name!r}; choose one of {OPTIMIZERS}')
  if opt.get('grad_clip_norm'):
    tx = optax.chain(optax.clip_by_global_norm(opt.grad_clip_norm), tx)
  return tx, schedule
