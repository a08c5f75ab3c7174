"""What a self-supervised method is, to the shared train loop.

A method is a `Method` of pure functions built from the config. The loop owns everything else
(data, augmentation, optimizer, online probe, sharding, checkpoints), so adding a method is one
new file in this package plus a config. Parameter trees are `{'encoder': ..., <heads>...}`:
the encoder is what evaluation freezes and probes.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax

PyTree = Any


class LossOutput(NamedTuple):
  """What a method's loss returns besides the scalar loss.

  Attributes:
    batch_stats: the new BatchNorm statistics.
    extra: the method's new extra state (EMA target, queue, bank, ...; {} for SimCLR).
    metrics: scalar diagnostics to log.
    features: [B, F] encoder representations of the first view, for the online probe.
  """
  batch_stats: PyTree
  extra: PyTree
  metrics: dict[str, jax.Array]
  features: jax.Array


class Method(NamedTuple):
  """Pure functions the train loop calls.

  Attributes:
    name: the method's key in `jssl.methods.METHODS`.
    views: augmentation of each view (`jssl.augment.ViewConfig`), in order.
    features_dim: F, the size of the encoder representation.
    init: (rng, images [B, H, W, C]) -> (params, batch_stats, extra).
    loss: (params, batch_stats, extra, views, step, rng) -> (loss, LossOutput); `views` is a
      tuple of [B, H, W, C] float arrays; `step` the current step; `rng` a key for the loss.
    encode: (params, batch_stats, images [B, H, W, C]) -> [B, F] frozen-encoder features
      (inference mode: BatchNorm running averages).
  """
  name: str
  views: tuple
  features_dim: int
  init: Callable[..., tuple[PyTree, PyTree, PyTree]]
  loss: Callable[..., tuple[jax.Array, LossOutput]]
  encode: Callable[..., jax.Array]
