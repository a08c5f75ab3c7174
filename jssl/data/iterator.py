"""A deterministic, resumable batch iterator over a random-access source.

The batch at position p of epoch e is a pure function of (seed, e, p, global batch size): the
epoch's order is a permutation drawn from `np.random.default_rng((seed, e))`, and batch p is
that permutation's slice [p * B, (p + 1) * B). The iterator's state is therefore just
`{'epoch', 'position'}` (plus the settings it was made with, kept to detect a mismatched
resume); it is saved in every checkpoint, so a resumed run sees exactly the batches an
uninterrupted one would have seen. The tail of each epoch that does not fill a batch is
dropped (every step sees a full global batch, so BatchNorm and in-batch negatives are the same
at every step).

Multi-host: every process computes the same global indices and reads only its own contiguous
slice of rows [process_index * B_local, (process_index + 1) * B_local), which is the layout
`jax.make_array_from_process_local_data` expects for a batch sharded over a ('data',) mesh whose
devices are ordered by process.
"""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

import numpy as np

from jssl.data.base import Source


class BatchIterator:
  """Yields this process's share of each global batch, in a reproducible order."""

  def __init__(self, source: Source, *, global_batch_size: int, seed: int,
               process_index: int = 0, process_count: int = 1, shuffle: bool = True,
               prefetch: bool = True):
    if global_batch_size <= 0:
      raise ValueError(f'global_batch_size must be positive, got {global_batch_size}')
    if global_batch_size % process_count:
      raise ValueError(
          f'global_batch_size={global_batch_size} is not divisible by the number of processes '
          f'({process_count}); choose a multiple of {process_count}.')
    if len(source) < global_batch_size:
      raise ValueError(
          f'the training split has {len(source)} examples, fewer than one global batch of '
          f'{global_batch_size}; lower --config.batch_size to at most {len(source)}.')
    self._source = source
    self._global_batch_size = global_batch_size
    self._local_batch_size = global_batch_size // process_count
    self._seed = int(seed)
    self._process_index = process_index
    self._shuffle = shuffle
    self._epoch = 0
    self._position = 0
    self._order_epoch = None
    self._order = None
    self._order_lock = threading.Lock()
    self._executor = (concurrent.futures.ThreadPoolExecutor(max_workers=1)
                      if prefetch else None)
    self._pending: tuple[tuple[int, int], concurrent.futures.Future] | None = None

  @property
  def steps_per_epoch(self) -> int:
    return len(self._source) // self._global_batch_size

  def get_state(self) -> dict[str, Any]:
    """JSON-serialisable position, saved in checkpoints."""
    return {'epoch': self._epoch, 'position': self._position, 'seed': self._seed,
            'global_batch_size': self._global_batch_size, 'num_examples': len(self._source)}

  def set_state(self, state: dict[str, Any]) -> None:
    """Restores a position saved by `get_state`; refuses a state from different settings."""
    for key, mine in (('seed', self._seed), ('global_batch_size', self._global_batch_size),
                      ('num_examples', len(self._source))):
      if state.get(key) != mine:
        raise ValueError(
            f'cannot resume the data iterator: the checkpoint was written with {key}='
            f'{state.get(key)} but this run has {key}={mine}. Resume with the original '
            'config, or start a new --workdir.')
    self._epoch = int(state['epoch'])
    self._position = int(state['position'])
    self._pending = None

  def _indices(self, epoch: int, position: int) -> np.ndarray:
    with self._order_lock:  # the prefetch thread and the caller may both get here
      if self._order_epoch != epoch:
        n = len(self._source)
        self._order = (np.random.default_rng((self._seed, epoch)).permutation(n)
                       if self._shuffle else np.arange(n))
        self._order_epoch = epoch
      order = self._order
    start = position * self._global_batch_size + self._process_index * self._local_batch_size
    return order[start:start + self._local_batch_size]

  def _load(self, epoch: int, position: int) -> dict[str, np.ndarray]:
    indices = self._indices(epoch, position)
    batch = self._source.get_batch(indices)
    batch['index'] = indices.astype(np.int32)
    return batch

  def _advance(self, epoch: int, position: int) -> tuple[int, int]:
    position += 1
    if position >= self.steps_per_epoch:
      return epoch + 1, 0
    return epoch, position

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    key = (self._epoch, self._position)
    if self._pending is not None and self._pending[0] == key:
      batch = self._pending[1].result()
    else:
      batch = self._load(*key)
    self._epoch, self._position = self._advance(*key)
    if self._executor is not None:
      # Reads the next batch on a thread while the device works on this one. The thread only
      # reads; the position moves here, so the saved state is always the consumer's.
      following = (self._epoch, self._position)
      self._pending = (following, self._executor.submit(self._load, *following))
    return batch

  def close(self) -> None:
    if self._executor is not None:
      self._executor.shutdown(wait=True, cancel_futures=True)
