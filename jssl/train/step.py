"""The shared training step: augment on device, method loss, optimizer, online probe."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from jssl import augment
from jssl.eval import diagnostics
from jssl.methods.base import Batch
from jssl.methods.base import Method
from jssl.train.state import TrainState


def probe_logits(probe_params: Any, features: jax.Array) -> jax.Array:
  """Linear classifier: [B, F] -> [B, C]."""
  return features @ probe_params['kernel'] + probe_params['bias']


def init_probe(features_dim: int, num_classes: int) -> dict[str, jax.Array]:
  return {'kernel': jnp.zeros((features_dim, num_classes), jnp.float32),
          'bias': jnp.zeros((num_classes,), jnp.float32)}


def _all_finite(tree: Any) -> jax.Array:
  leaves = jax.tree_util.tree_leaves(tree)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def make_train_step(method: Method, optimizer: optax.GradientTransformation,
                    probe_optimizer: optax.GradientTransformation,
                    schedule: Callable[[Any], Any], *,
                    augment_views: Callable = augment.augment_views,
                    collapse_diagnostics: bool = True,
                    online_probe: bool = True) -> Callable:
  """Returns `train_step(state, batch) -> (new_state, metrics)`, pure and jit-able.

  `batch` holds 'image' uint8 [B, H, W, C], 'label' int32 [B] and 'index' int32 [B] (the
  examples' positions in the training split). Labels feed the online probe, whose gradients
  never reach the encoder, and only those methods that are supervised by definition (SupCon).
  `augment_views(key, images, views)` makes the views; training always uses the default,
  `jssl.bench --augment=false` swaps in a deterministic resize to time the rest of the step.
  `collapse_diagnostics=False` (no collapse metrics) and `online_probe=False` (the probe is not
  trained) exist so `jssl.bench` can measure what those parts cost.
  """

  def train_step(state: TrainState, batch: dict[str, jax.Array]):
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    augment_rng, loss_rng = jax.random.split(rng)
    views = augment_views(augment_rng, batch['image'], method.views)
    inputs = Batch(views=tuple(views), label=batch['label'], index=batch['index'])

    def loss_fn(params):
      return method.loss(params, state.batch_stats, state.extra, inputs, state.step, loss_rng)

    (loss, out), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)

    features = jax.lax.stop_gradient(out.features).astype(jnp.float32)

    def probe_loss_fn(probe_params):
      logits = probe_logits(probe_params, features)
      return optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean(), logits

    probe_metrics = {}
    probe_params, probe_opt_state = state.probe_params, state.probe_opt_state
    if online_probe:
      (probe_loss, logits), probe_grads = jax.value_and_grad(probe_loss_fn, has_aux=True)(
          state.probe_params)
      probe_updates, probe_opt_state = probe_optimizer.update(
          probe_grads, state.probe_opt_state, state.probe_params)
      probe_params = optax.apply_updates(state.probe_params, probe_updates)
      probe_metrics = {'online_probe_loss': probe_loss,
                       'online_probe_top1': jnp.mean(jnp.argmax(logits, -1) == batch['label'])}

    finite = jnp.isfinite(loss) & _all_finite(grads)
    first_bad = (state.nonfinite_step < 0) & ~finite
    keep_going = (state.nonfinite_step < 0) & finite
    candidate = state.replace(
        params=params, batch_stats=out.batch_stats, opt_state=opt_state, extra=out.extra,
        probe_params=probe_params, probe_opt_state=probe_opt_state)
    new_state = jax.tree_util.tree_map(
        lambda new, old: jnp.where(keep_going, new, old), candidate, state)
    new_state = new_state.replace(
        step=state.step + 1,
        nonfinite_step=jnp.where(first_bad, state.step, state.nonfinite_step))
    metrics = {
        'loss': loss,
        'learning_rate': jnp.asarray(schedule(state.step), jnp.float32),
        **probe_metrics,
        **out.metrics,
    }
    if collapse_diagnostics and out.embeddings is not None:
      metrics.update(diagnostics.collapse_metrics(*out.embeddings, features))
    return new_state, metrics

  return train_step
