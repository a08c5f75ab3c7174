"""The one immutable state pytree of a run."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax


@flax.struct.dataclass
class TrainState:
  """Everything a step reads and writes; checkpoints save exactly this.

  Attributes:
    step: int32 scalar, the number of steps taken.
    rng: uint32 key data of the run's root key (`jax.random.key_data`); each step folds in
      `step`, so the randomness of step t does not depend on when the run was resumed.
    params: trainable parameters, `{'encoder': ..., <method heads>...}`.
    batch_stats: BatchNorm running statistics.
    opt_state: optimizer state of `params`.
    extra: the method's own state (EMA target, queue, memory bank, ...).
    probe_params: the online linear probe, trained on stop-gradient features.
    probe_opt_state: its optimizer state.
    nonfinite_step: int32 scalar, -1 until a step's loss or gradients are non-finite, then
      that step. From then on steps leave the state untouched, so the state stays the last
      good one while the host notices.
  """
  step: jax.Array
  rng: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  extra: Any
  probe_params: Any
  probe_opt_state: Any
  nonfinite_step: jax.Array
