"""What a self-supervised method is, to the shared train loop.

A method is a `Method` of pure functions built from the config. The loop owns everything else
(data, augmentation, optimizer, online probe, sharding, checkpoints), so adding a method is one
new file in this package plus a config. Parameter trees are `{'encoder': ..., <heads>...}`:
the encoder is what evaluation freezes and probes.

A method module defines `create(config, info: TrainInfo) -> Method`, raising
`jssl.config.ConfigError` for settings it cannot run with (it is called before anything is
compiled), and is registered in `jssl.methods.METHODS`.

The contract covers every modality and family through optional fields of `Method`, each with a
default that is what the image methods do:
* `prepare` — the method's own pure, on-device input preparation (default: the augmented image
  views of `Method.views`, packed in a `Batch`); text masking, graph corruption, noise and
  pretext transformations are written here, one key per example;
* `players` — ordered parameter groups with their own losses and optimizers, updated one after
  the other inside the one jitted step (GANs); default one player owning every parameter;
* `represent` — features of any modality's raw batch for the probes (default: `encode` of the
  evaluation view of the images);
* `evaluate` — the method's own evaluation (likelihood, samples, perplexity, ...), called by
  the loop after the probes.
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
    dataset: the training `jssl.data.Dataset` itself, for what only some methods need (a text
      dataset's tokenizer, a graph's feature size); None in unit tests that build a method
      without data.
  """
  num_examples: int
  num_classes: int
  image_channels: int
  num_steps: int
  dataset: Any = None


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
    features: [B, F] encoder representations of the first view, for the online probe (None:
      the method has no per-example representation in this batch; no online probe then).
    embeddings: (e1, e2), two [B, D] outputs for two views of the same B examples, in the
      space the loss acts on (projections, predictions or prototype scores; not normalised).
      The loop logs collapse diagnostics from them every step (`jssl.eval.diagnostics`):
      RankMe, the per-dimension std of the normalised outputs, alignment and uniformity.
      None skips them (every built-in method returns them).
  """
  batch_stats: PyTree
  extra: PyTree
  metrics: dict[str, jax.Array]
  features: jax.Array | None
  embeddings: tuple | None = None


class Player(NamedTuple):
  """One parameter group of a multi-player method (a GAN's discriminator or generator).

  Attributes:
    name: the player's name; its optimizer state is `TrainState.opt_state[name]` and its loss
      is logged as `loss_<name>`.
    params: the top-level keys of the params tree this player owns and updates; the players'
      keys are disjoint and cover the tree.
    loss: (params, batch_stats, extra, inputs, step, rng) -> (loss, LossOutput), as
      `Method.loss`; `params` is the whole tree (the other players' current values), gradients
      are taken with respect to this player's keys only. Its `LossOutput.batch_stats` and
      `extra` are what the next player sees.
    steps: updates of this player per train step (k discriminator steps per generator step),
      each with a fresh key, each seeing the state the previous update left.
    optimizer: the config section of its optimizer (e.g. 'gan.discriminator_optimizer', a
      section shaped like `config.optimizer`); None uses `config.optimizer`.
  """
  name: str
  params: tuple
  loss: Callable[..., tuple[jax.Array, LossOutput]]
  steps: int = 1
  optimizer: str | None = None


class EvalContext(NamedTuple):
  """What a method's `evaluate` hook may use.

  Attributes:
    state: the `TrainState` (replicated global arrays).
    dataset: the training `jssl.data.Dataset`.
    eval_dataset: the dataset the probes ran on (the training one unless
      `config.eval.dataset` names another).
    constants: the dataset's device constants (a graph's arrays; {} for images).
    mesh: the ('data',) mesh.
    config: the run's config.
    workdir: the run's directory (for sample grids and other files), or None.
    step: the number of steps taken.
    features: {'train'|'validation'|'test': (features [N, F], labels [N])} the probes used,
      or {} when the method has no representation.
  """
  state: Any
  dataset: Any
  eval_dataset: Any
  constants: Any
  mesh: Any
  config: Any
  workdir: str | None
  step: int
  features: dict


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
    prepare: optional; (rng, batch, constants) -> inputs for `loss` / the players' losses,
      pure and jitted inside the step. `batch` is the step's global batch as a dict (the
      source's fields, e.g. 'image' / 'tokens' / 'node', plus 'label' and 'index'); `constants`
      the dataset's device constants (a graph's node features and edges; {} for images).
      None (the default): a `Batch` of `views` augmented on the device.
    players: optional; the `Player`s in update order. None: one player owning every
      parameter, with `loss` and `config.optimizer` (its optimizer state is then the
      optimizer's state itself, as it has always been).
    represent: optional; (params, batch_stats, batch, constants) -> [B, F] features of a raw
      (host) batch of any modality, for kNN / linear probes and fine-tuning. None: `encode` of
      the evaluation view of `batch['image']`.
    evaluate: optional; (EvalContext) -> dict of float metrics (metric names as in DESIGN.md
      section 4: 'bits_per_dim', 'elbo', 'mlm_perplexity', ...), called at every evaluation
      after the probes.
    finetune: optional; (params, batch_stats, inputs, rng) -> (features [B, F], new
      batch_stats), the encoder in training mode with gradients, for fine-tuning protocols;
      `inputs` is what `represent` receives. None: the config's image encoder applied to
      `params['encoder']` (the tree of every EncoderProjector method).
    probe: whether the run's kNN / linear probes apply (False for a method without a
      per-example representation of the evaluation data).
    online_probe: whether the loop trains the online linear probe on `LossOutput.features`
      (False where a batch's labels must not be seen in training, e.g. a graph's test nodes,
      or where the loss returns no features); `online_linear_top1` is reported only then.
  """
  name: str
  views: tuple
  features_dim: int
  init: Callable[..., tuple[PyTree, PyTree, PyTree]]
  loss: Callable[..., tuple[jax.Array, LossOutput]] | None
  encode: Callable[..., jax.Array] | None
  epoch_start: Callable[..., tuple[PyTree, PyTree, PyTree]] | None = None
  epoch_features: Callable[[int], bool] | None = None
  prepare: Callable[..., Any] | None = None
  players: tuple | None = None
  represent: Callable[..., jax.Array] | None = None
  evaluate: Callable[..., dict] | None = None
  finetune: Callable[..., Any] | None = None
  probe: bool = True
  online_probe: bool = True
