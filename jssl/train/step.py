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
  if not leaves:
    return jnp.asarray(True)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def prepare_inputs(method: Method, rng: jax.Array, batch: dict[str, jax.Array], constants: Any,
                   augment_views: Callable = augment.augment_views) -> Any:
  """The method's inputs of one step: `method.prepare`, or by default a `Batch` of the image
  views of `method.views` augmented on the device (`augment_views(key, images, views)`)."""
  if method.prepare is not None:
    return method.prepare(rng, batch, constants)
  views = augment_views(rng, batch['image'], method.views)
  return Batch(views=tuple(views), label=batch['label'], index=batch['index'])


def check_players(method: Method, params: Any) -> None:
  """Raises ConfigError unless the players' parameter keys are disjoint, cover `params`'s
  top-level keys, and every player takes at least one update per step."""
  from jssl.config import ConfigError  # pylint: disable=g-import-not-at-top
  if method.players is None:
    return
  owned = [key for player in method.players for key in player.params]
  if len(owned) != len(set(owned)) or set(owned) != set(params):
    raise ConfigError(
        f'{method.name}: the players own the parameter groups {owned}, but the parameters '
        f'are {sorted(params)}; every group must belong to exactly one player.')
  for player in method.players:
    if int(player.steps) < 1:
      raise ConfigError(f'{method.name}: player {player.name!r} takes {player.steps} updates per '
                        'step; it must take at least 1.')


def make_train_step(method: Method, optimizer: optax.GradientTransformation,
                    probe_optimizer: optax.GradientTransformation,
                    schedule: Callable[[Any], Any], *,
                    augment_views: Callable = augment.augment_views,
                    collapse_diagnostics: bool = True,
                    online_probe: bool = True,
                    player_optimizers: dict[str, optax.GradientTransformation] | None = None,
                    ) -> Callable:
  """Returns `train_step(state, batch, constants={}) -> (new_state, metrics)`, pure, jit-able.

  `batch` is the global batch as a dict: a source's fields ('image' uint8 [B, H, W, C] for
  images, 'tokens' for text, 'node' for graphs, ...), 'label' int32 [B] and 'index' int32 [B]
  (the examples' positions in the training split). `constants` are the dataset's device
  constants (a graph's arrays), passed to `method.prepare`. Labels feed the online probe,
  whose gradients never reach the encoder, and only those methods that are supervised by
  definition (SupCon).
  `augment_views(key, images, views)` makes the default image views; training always uses the
  default, `jssl.bench --augment=false` swaps in a deterministic resize to time the rest of the
  step. `collapse_diagnostics=False` (no collapse metrics) and `online_probe=False` (the probe
  is not trained) exist so `jssl.bench` can measure what those parts cost.
  A method with `players` updates them in order, each `player.steps` times, each with its own
  optimizer from `player_optimizers[player.name]` and its state in `state.opt_state[name]`;
  a later player's loss sees the parameters, BatchNorm statistics and extra state the earlier
  updates left (a GAN's generator steps against the updated discriminator).
  """

  def single_player(state, inputs, loss_rng):
    def loss_fn(params):
      return method.loss(params, state.batch_stats, state.extra, inputs, state.step, loss_rng)

    (loss, out), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(loss) & _all_finite(grads)
    return loss, out, params, opt_state, finite

  def several_players(state, inputs, loss_rng):
    params, batch_stats, extra = state.params, state.batch_stats, state.extra
    opt_state = dict(state.opt_state)
    finite = jnp.asarray(True)
    metrics, first_out, losses = {}, None, []
    for index, player in enumerate(method.players):
      tx = player_optimizers[player.name]
      for update in range(int(player.steps)):
        key = jax.random.fold_in(jax.random.fold_in(loss_rng, index), update)
        own = {name: params[name] for name in player.params}

        def loss_fn(own, player=player, key=key, params=params, batch_stats=batch_stats,
                    extra=extra):
          return player.loss({**params, **own}, batch_stats, extra, inputs, state.step, key)

        (value, out), grads = jax.value_and_grad(loss_fn, has_aux=True)(own)
        updates, opt_state[player.name] = tx.update(grads, opt_state[player.name], own)
        params = {**params, **optax.apply_updates(own, updates)}
        batch_stats, extra = out.batch_stats, out.extra
        finite = finite & jnp.isfinite(value) & _all_finite(grads)
      first_out = out if first_out is None else first_out
      metrics.update(out.metrics)
      metrics[f'loss_{player.name}'] = value
      losses.append(value)
    out = first_out._replace(batch_stats=batch_stats, extra=extra, metrics=metrics)
    return sum(losses), out, params, opt_state, finite

  def train_step(state: TrainState, batch: dict[str, jax.Array], constants: Any = None):
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    augment_rng, loss_rng = jax.random.split(rng)
    inputs = prepare_inputs(method, augment_rng, batch, {} if constants is None else constants,
                            augment_views)
    update = single_player if method.players is None else several_players
    loss, out, params, opt_state, finite = update(state, inputs, loss_rng)

    probe_metrics = {}
    probe_params, probe_opt_state = state.probe_params, state.probe_opt_state
    if online_probe and method.online_probe and out.features is not None:
      features = jax.lax.stop_gradient(out.features).astype(jnp.float32)

      def probe_loss_fn(probe_params):
        logits = probe_logits(probe_params, features)
        return (optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean(),
                logits)

      (probe_loss, logits), probe_grads = jax.value_and_grad(probe_loss_fn, has_aux=True)(
          state.probe_params)
      probe_updates, probe_opt_state = probe_optimizer.update(
          probe_grads, state.probe_opt_state, state.probe_params)
      probe_params = optax.apply_updates(state.probe_params, probe_updates)
      probe_metrics = {'online_probe_loss': probe_loss,
                       'online_probe_top1': jnp.mean(jnp.argmax(logits, -1) == batch['label'])}

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
    if collapse_diagnostics and out.embeddings is not None and out.features is not None:
      metrics.update(diagnostics.collapse_metrics(*out.embeddings, out.features.astype(
          jnp.float32)))
    return new_state, metrics

  return train_step
