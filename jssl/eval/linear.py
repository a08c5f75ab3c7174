"""Offline linear probe on frozen features.

Multinomial logistic regression on standardised features, fitted full-batch with L-BFGS for
each L2 strength of a grid; the strength with the best validation accuracy is chosen and its
classifier's accuracy on the test split is reported (`linear_top1`). Test labels never
influence the choice. Features are held in memory: suited to datasets up to a few hundred
thousand examples (for ImageNet-scale data rely on the online probe or extract features to disk).
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import optax

DEFAULT_L2_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


@functools.partial(jax.jit, static_argnames=('num_classes', 'num_steps'))
def fit_logistic_regression(features, labels, l2, *, num_classes: int, num_steps: int):
  """Minimises mean cross-entropy + l2 * ||W||^2 by L-BFGS.

  Args:
    features: [N, F] float32 (standardised).
    labels: [N] int32.
    l2: scalar L2 strength on the weights (not the bias).
    num_classes: C.
    num_steps: L-BFGS iterations.

  Returns:
    {'kernel': [F, C], 'bias': [C]}.
  """
  params = {'kernel': jnp.zeros((features.shape[1], num_classes), jnp.float32),
            'bias': jnp.zeros((num_classes,), jnp.float32)}

  def objective(p):
    logits = features @ p['kernel'] + p['bias']
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return ce + l2 * jnp.sum(jnp.square(p['kernel']))

  solver = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(objective)

  def body(_, carry):
    p, state = carry
    value, grad = value_and_grad(p, state=state)
    updates, state = solver.update(grad, state, p, value=value, grad=grad, value_fn=objective)
    return optax.apply_updates(p, updates), state

  params, _ = jax.lax.fori_loop(0, num_steps, body, (params, solver.init(params)))
  return params


def _accuracy(params, features, labels) -> float:
  logits = features @ params['kernel'] + params['bias']
  return float(jnp.mean(jnp.argmax(logits, -1) == labels))


def linear_probe(train_features, train_labels, val_features, val_labels, test_features,
                 test_labels, *, num_classes: int, l2_grid: Sequence[float] = DEFAULT_L2_GRID,
                 num_steps: int = 200) -> dict[str, float]:
  """Fits one probe per L2 strength, chooses on validation, reports test accuracy.

  Args:
    train_features, val_features, test_features: [N_split, F] frozen features.
    train_labels, val_labels, test_labels: [N_split] int labels.
    num_classes: C.
    l2_grid: candidate L2 strengths.
    num_steps: L-BFGS iterations per fit.

  Returns:
    {'linear_top1': test accuracy of the chosen probe, 'linear_val_top1': its validation
     accuracy, 'linear_l2': the chosen strength}.
  """
  train = jnp.asarray(train_features, jnp.float32)
  mean = train.mean(axis=0)
  std = train.std(axis=0) + 1e-6  # statistics of the training split only
  standardise = lambda x: (jnp.asarray(x, jnp.float32) - mean) / std
  train, val, test = standardise(train), standardise(val_features), standardise(test_features)
  train_y = jnp.asarray(train_labels, jnp.int32)
  val_y = jnp.asarray(val_labels, jnp.int32)
  test_y = jnp.asarray(test_labels, jnp.int32)
  best = None
  for l2 in l2_grid:
    params = fit_logistic_regression(train, train_y, jnp.float32(l2), num_classes=num_classes,
                                     num_steps=num_steps)
    val_acc = _accuracy(params, val, val_y)
    if best is None or val_acc > best[0]:  # ties keep the weaker regularisation seen first
      best = (val_acc, float(l2), params)
  val_acc, l2, params = best
  return {'linear_top1': _accuracy(params, test, test_y), 'linear_val_top1': val_acc,
          'linear_l2': l2}
