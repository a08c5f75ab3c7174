"""Pure state operations of the instance-discrimination family: EMA targets, FIFO queues of
embeddings, and per-example memory banks.

Every function returns new arrays and never mutates its inputs, so a method's state update is
part of its loss's outputs and the train step stays `new_state = step(state, batch)`. Under
`jax.jit` over a globally sharded batch the arguments are global arrays: a queue receives the
keys of every device's examples, a bank is written at every example's index.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jssl.config import ConfigError
from jssl.losses import l2_normalize

PyTree = Any


# ------------------------------------------------------------------------------------------ EMA


def ema_update(target: PyTree, online: PyTree, momentum: jax.Array | float) -> PyTree:
  """Exponential moving average `target <- momentum * target + (1 - momentum) * online`.

  Args:
    target: the slow tree (MoCo's key encoder, BYOL's target).
    online: a tree of the same structure, the trained parameters; no gradient flows into it
      through this update.
    momentum: scalar in [0, 1]; 1 freezes the target, 0 copies the online tree.

  Returns:
    The new target tree (float32 leaves stay float32).
  """
  online = jax.lax.stop_gradient(online)
  return optax.incremental_update(online, target, step_size=1.0 - momentum)


def momentum_schedule(step: jax.Array, *, base: float, num_steps: int,
                      schedule: str) -> jax.Array:
  """The EMA momentum at `step`.

  Args:
    step: int scalar, the step being taken (0-based).
    base: the momentum at step 0 (MoCo: 0.999; BYOL: 0.996; MoCo v3: 0.99).
    num_steps: total steps of the run.
    schedule: 'constant' (MoCo v1/v2) or 'cosine' — BYOL's and MoCo v3's increase from `base`
      to 1: `1 - (1 - base) * (cos(pi * step / num_steps) + 1) / 2`.

  Returns:
    float32 scalar.
  """
  if schedule == 'constant':
    return jnp.asarray(base, jnp.float32)
  if schedule == 'cosine':
    progress = jnp.asarray(step, jnp.float32) / max(num_steps, 1)
    return 1.0 - (1.0 - base) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0
  raise ValueError(f"unknown momentum schedule {schedule!r}; use 'constant' or 'cosine'.")


MOMENTUM_SCHEDULES = ('constant', 'cosine')


def validate_ema(section: str, c, *, paper: str) -> None:
  """Checks `config.<section>.momentum` and `.momentum_schedule`; raises ConfigError.

  `paper` names the published base momentum for the message (e.g. 'BYOL: 0.996').
  """
  if not 0.0 <= c.momentum <= 1.0:
    raise ConfigError(f'config.{section}.momentum={c.momentum} must be in [0, 1] ({paper}).')
  if c.momentum_schedule not in MOMENTUM_SCHEDULES:
    raise ConfigError(f'config.{section}.momentum_schedule={c.momentum_schedule!r} is unknown; '
                      f'choose one of {MOMENTUM_SCHEDULES}.')


def ema_step(target: PyTree, online: PyTree, step: jax.Array, c,
             num_steps: int) -> tuple[jax.Array, PyTree]:
  """One EMA update of a target network at `step`, with `c.momentum` / `c.momentum_schedule`.

  Returns:
    (the momentum used, float32 scalar; the new target tree).
  """
  momentum = momentum_schedule(step, base=c.momentum, num_steps=num_steps,
                               schedule=c.momentum_schedule)
  return momentum, ema_update(target, online, momentum)


# ---------------------------------------------------------------------------------------- queue


def validate_fifo_size(field: str, size: int, batch: int, *, what: str,
                       optional: bool = False) -> None:
  """Checks that a queue of `size` rows (`config.<field>`) holds whole global batches.

  Every push writes one global batch of `batch` rows, so the queue size must be a positive
  multiple of it (or 0 when the queue is `optional`); raises ConfigError with a valid size.
  """
  if (optional and size == 0) or (size >= batch and size % batch == 0):
    return
  suggestion = max(1, size // batch) * batch
  allowed = '0 (no queue) or a positive multiple' if optional else 'a positive multiple'
  raise ConfigError(
      f'config.{field}={size} must be {allowed} of the global batch (config.batch_size={batch}) '
      f'so that every push replaces whole batches of {what}, e.g. --config.{field}={suggestion}.')


def init_queue(rng: jax.Array, size: int, dim: int) -> tuple[jax.Array, jax.Array]:
  """A queue of `size` random unit vectors (MoCo's initialisation) and its pointer 0.

  Returns:
    (queue [size, dim] float32, pointer int32 scalar).
  """
  queue = l2_normalize(jax.random.normal(rng, (size, dim), jnp.float32))
  return queue, jnp.zeros((), jnp.int32)


def queue_push(queue: jax.Array, pointer: jax.Array,
               keys: jax.Array) -> tuple[jax.Array, jax.Array]:
  """First in, first out: writes `keys` over the oldest rows of `queue`.

  Row `pointer` is the oldest entry; the B keys go to rows `pointer, pointer + 1, ...` modulo
  the queue size (wrapping around the end), and the pointer moves B rows on. After any number of
  pushes the queue holds the newest `size` keys, each written exactly once.

  Args:
    queue: [K, D] embeddings.
    pointer: int32 scalar in [0, K), the oldest row.
    keys: [B, D] new entries, B <= K; row order is kept (key 0 is written first).

  Returns:
    (new queue [K, D], new pointer = (pointer + B) mod K).
  """
  size, batch = queue.shape[0], keys.shape[0]
  if keys.ndim != 2 or keys.shape[1] != queue.shape[1]:
    raise ValueError(f'queue_push: keys {keys.shape} do not match queue rows {queue.shape}.')
  if batch > size:
    raise ValueError(f'queue_push: {batch} keys do not fit a queue of {size}; the queue must '
                     'hold at least one global batch.')
  rows = (pointer + jnp.arange(batch)) % size
  keys = jax.lax.stop_gradient(keys).astype(queue.dtype)
  return queue.at[rows].set(keys), ((pointer + batch) % size).astype(jnp.int32)


# ---------------------------------------------------------------------------------- memory bank


def init_bank(rng: jax.Array, num_examples: int, dim: int) -> jax.Array:
  """A memory bank of one random unit vector per training example: [num_examples, dim]."""
  return l2_normalize(jax.random.normal(rng, (num_examples, dim), jnp.float32))


def bank_update(bank: jax.Array, index: jax.Array, values: jax.Array, *,
                momentum: float) -> jax.Array:
  """Moves the bank rows of `index` towards `values` and re-normalises them (Wu et al. 2018).

  `bank[i] <- normalise(momentum * bank[i] + (1 - momentum) * normalise(values))`; momentum 0
  overwrites the rows. Rows not in `index` are unchanged.

  Args:
    bank: [N, D] unit vectors.
    index: [B] int rows to update, distinct (the batch iterator guarantees this).
    values: [B, D] new embeddings of those examples (normalised here; no gradient flows).
    momentum: scalar in [0, 1).

  Returns:
    The new bank [N, D].
  """
  values = l2_normalize(jax.lax.stop_gradient(values).astype(bank.dtype))
  mixed = momentum * bank[index] + (1.0 - momentum) * values
  return bank.at[index].set(l2_normalize(mixed))


def sample_negatives(rng: jax.Array, bank: jax.Array, batch: int, count: int) -> jax.Array:
  """`count` bank rows per query, drawn uniformly with replacement: [batch, count, D].

  Uniform noise over the training set is the noise distribution of NPID's NCE (P_n = 1/N).
  """
  rows = jax.random.randint(rng, (batch, count), 0, bank.shape[0])
  return jax.lax.stop_gradient(bank[rows])


# ------------------------------------------------------------------------ nearest neighbours


def nearest_neighbours(query: jax.Array, support: jax.Array, k: int) -> jax.Array:
  """Indices of the k most cosine-similar rows of `support` for each query: [B, k].

  Args:
    query: [B, D].
    support: [S, D], k <= S.
    k: neighbours per query, most similar first.
  """
  sims = l2_normalize(query) @ l2_normalize(support).T
  return jax.lax.top_k(jax.lax.stop_gradient(sims), k)[1]
