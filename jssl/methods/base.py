"""What a self-supervised method is, to the shared train loop.

A method is a `Method` of pure functions built from the config. The loop owns everything else
(data, augmentation, optimizer, online probe, sharding, checkpoints), so adding a method is one
new file in this package plus a config. Parameter trees are `{'encoder': ..., <heads>...}`:
the encoder is what evaluation freezes and probes.

A method module defines `create(config, info: TrainInfo) -> Method`, raising
`jssl.config.ConfigError` for settings it cannot run with (it is called before anything is
compiled), and is registered in `jssl.methods.METHODS`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax

PyTree = Any


class TrainInfo(NamedTuple):
  """Facts about the run that a method may need when it is built.

  Attributes:
    num_examples: size of the training split (the rows of a memory bank; indices in
      `Batch.index` are in [0, num_examples)).
    num_classes: number of labels (only supervised methods such as SupCon train on them).
    image_channels: C of the stored images (1 for grayscale, 3 for RGB).
    num_steps: total optimizer steps of the run (for schedules such as an EMA momentum).
  """
  num_examples: int
  num_classes: int
  image_channels: int
  num_steps: int


class Batch(NamedTuple):
  """One global batch as a method's loss sees it.

  Attributes:
    views: tuple of V float32 [B, H, W, C] augmented views, in the order of `Method.views`.
    label: [B] int32 class labels. Self-supervised methods must not read them (the online
      probe uses them outside the method); supervised ones (SupCon) do.
    index: [B] int32 position of each example in the training split, distinct within a batch
      (memory banks are indexed by it).
  """
  views: tuple
  label: jax.Array
  index: jax.Array


class LossOutput(NamedTuple):
  """What a method's loss returns besides the scalar loss.

  Attributes:
    batch_stats: the new BatchNorm statistics.
    extra: the method's new extra state (EMA target, queue, bank, ...; {} for SimCLR).
    metrics: scalar diagnostics to log.
    features: [B, F] encoder representations of the first view, for the online probe.
    embeddings: (e1, e2), two [B, D] outputs for two views of the same B examples, in the
      space the loss acts on (projections, predictions or prototype scores; not normalised).
      The loop logs collapse diagnostics from them every step (`jssl.eval.diagnostics`):
      RankMe, the per-dimension std of the normalised outputs, alignment and uniformity.
      None skips them (every built-in method returns them).
  """
  batch_stats: PyTree
  extra: PyTree
  metrics: dict[str, jax.Array]
  features: jax.Array
  embeddings: tuple | None = None


class Method(NamedTuple):
  """Pure functions the train loop calls.

  Attributes:
    name: the method's key in `jssl.methods.METHODS`.
    views: augmentation of each view (`jssl.augment.ViewConfig`), in order.
    features_dim: F, the size of the encoder representation.
    init: (rng, images [B, H, W, C]) -> (params, batch_stats, extra); `extra` is the method's
      non-trained state (EMA target, queue, memory bank, ...), checkpointed with the rest.
    loss: (params, batch_stats, extra, batch, step, rng) -> (loss, LossOutput); `batch` is a
      `Batch`; `step` the int32 step about to be taken; `rng` a key for the loss. Gradients are
      taken with respect to `params` only; state updates (EMA, enqueue, bank writes) are
      returned in `LossOutput.extra` and kept only if the step's loss and gradients are finite.
    encode: (params, batch_stats, images [B, H, W, C]) -> [B, F] frozen-encoder features
      (inference mode: BatchNorm running averages).
    epoch_start: optional; (params, opt_state, extra, features, epoch, rng) ->
      (params, opt_state, extra), called by the loop before the first step of every epoch
      (including epoch 0, and again when a run resumes exactly at an epoch boundary, since
      checkpoints are taken before it). `features` is [N, F] float32: `encode` of every
      training example's evaluation view, row i = example i (`Batch.index`), replicated;
      `epoch` an int32 scalar; `rng` a key that depends only on the epoch. DeepCluster
      clusters them and re-initialises its classifier (and that part of `opt_state`) here.
    epoch_features: optional; (epoch: int) -> bool, whether `epoch_start` needs `features` at
      that epoch. When it says False the loop skips encoding the training split and passes
      None (Local Aggregation clusters its bank instead; DeepCluster between reclusterings).
      None (the default): features are computed before every `epoch_start`.
  """
  name: str
  views: tuple
  features_dim: int
  init: Callable[..., tuple[PyTree, PyTree, PyTree]]
  loss: Callable[..., tuple[jax.Array, LossOutput]]
  encode: Callable[..., jax.Array]
  epoch_start: Callable[..., tuple[PyTree, PyTree, PyTree]] | None = None
  epoch_features: Callable[[int], bool] | None = None
