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


def learning_rate_schedule(config: ml_collections.ConfigDict, total_steps: int,
                           section: ml_collections.ConfigDict | None = None
                           ) -> Callable[[Any], Any]:
  """Linear warm-up to the scaled peak rate, then cosine decay to 0 at `total_steps`.

  `section` is the optimizer section to read (default `config.optimizer`; a player's own).
  """
  opt = config.optimizer if section is None else section
  peak = opt.base_learning_rate * config.batch_size / 256.0
  warmup = min(int(opt.warmup_steps), max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak, warmup_steps=warmup,
      decay_steps=max(total_steps, warmup + 1), end_value=0.0)


def create_optimizer(config: ml_collections.ConfigDict, total_steps: int,
                     section: ml_collections.ConfigDict | None = None
                     ) -> tuple[optax.GradientTransformation, Callable]:
  """Returns (optimizer, schedule) for `config.optimizer.name` in OPTIMIZERS.

  `section` is the optimizer section to read (default `config.optimizer`): a config section
  with the fields of `config.optimizer`, e.g. a GAN player's own.
  """
  opt = config.optimizer if section is None else section
  schedule = learning_rate_schedule(config, total_steps, opt)
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
    tx = optax.adamw(schedule, b1=opt.get('adam_b1', 0.9), weight_decay=opt.weight_decay,
                     mask=weight_decay_mask)
  else:
    raise ValueError(f'unknown optimizer {opt.name!r}; choose one of {OPTIMIZERS}')
  if opt.get('grad_clip_norm'):
    tx = optax.chain(optax.clip_by_global_norm(opt.grad_clip_norm), tx)
  return tx, schedule


def optimizer_section(config: ml_collections.ConfigDict, path: str | None
                      ) -> ml_collections.ConfigDict:
  """The optimizer section at dotted `path` of `config` (None: `config.optimizer`).

  Raises:
    ConfigError: the path is not a section with `config.optimizer`'s fields, or names an
      unknown optimizer.
  """
  from jssl.config import ConfigError  # pylint: disable=g-import-not-at-top
  if path is None:
    return config.optimizer
  section = config
  for part in path.split('.'):
    if not isinstance(section, ml_collections.ConfigDict) or part not in section:
      raise ConfigError(f'config.{path} is missing: a player reads its optimizer from it (a '
                        'section with the fields of config.optimizer).')
    section = section[part]
  missing = [key for key in config.optimizer if key not in section]
  if missing:
    raise ConfigError(f'config.{path} lacks {missing}: it needs every field of config.optimizer.')
  if section.name not in OPTIMIZERS:
    raise ConfigError(f'config.{path}.name={section.name!r} is unknown; choose one of '
                      f'{OPTIMIZERS}.')
  if not section.base_learning_rate > 0:
    raise ConfigError(f'config.{path}.base_learning_rate={section.base_learning_rate} must be '
                      'positive.')
  return section


def create_player_optimizers(config: ml_collections.ConfigDict, players,
                             total_steps: int) -> dict[str, optax.GradientTransformation]:
  """{player name: its optimizer} for a multi-player method (`jssl.methods.base.Player`).

  A player that updates k times per step takes k optimizer steps per train step; its schedule
  counts its own updates, so warm-up and decay are stretched over k * total_steps of them.
  """
  return {player.name: create_optimizer(config, total_steps * int(player.steps),
                                        optimizer_section(config, player.optimizer))[0]
          for player in players}


def players_optimizer(players, optimizers: dict[str, optax.GradientTransformation]
                      ) -> optax.GradientTransformation:
  """One transformation whose `init(params)` is `{player: its optimizer's state of the groups it
  owns}`: the `TrainState.opt_state` of a multi-player method. Updates go through each
  player's own optimizer in the step (`jssl.train.step.make_train_step`), never through this."""

  def init(params):
    return {player.name: optimizers[player.name].init({key: params[key] for key in player.params})
            for player in players}

  def update(updates, state, params=None):
    raise NotImplementedError('a multi-player state is updated player by player in the step')

  return optax.GradientTransformation(init, update)
