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

Two iterators share that definition (`epoch_order`, `local_indices`) and yield the same
batches:
* `GrainIterator`, what runs use: the batches are a grain `MapDataset` over the global step
  (element g is the batch of step g), read ahead in the main process (`workers=0`) or
  decoded in `workers` worker processes by grain's `mp_prefetch`, whose round-robin
  interleaving keeps the order. Grain's own index samplers are not used: their shuffle
  (a Feistel permutation per epoch) is not numpy's, and would change every existing run's
  batches. Its position is the same `{'epoch', 'position'}`: the pipeline is rebuilt from
  that step on a restore, so a run may resume with another worker count.
* `BatchIterator`, the plain one: the next batch read on one thread. It is the reference the
  tests compare the grain pipeline with.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import threading
import time
from typing import Any

import numpy as np

from jssl.data.base import Source


def epoch_order(seed: int, epoch: int, num_examples: int, shuffle: bool = True) -> np.ndarray:
  """The order of the examples in `epoch`: int64 [num_examples], a permutation drawn from
  `np.random.default_rng((seed, epoch))`, or 0..N-1 when not shuffling."""
  if not shuffle:
    return np.arange(num_examples)
  return np.random.default_rng((seed, epoch)).permutation(num_examples)


def local_indices(order: np.ndarray, position: int, *, global_batch_size: int,
                  process_index: int, process_count: int) -> np.ndarray:
  """This process's rows of batch `position` of an epoch `order`: [global_batch_size //
  process_count] indices, the process's contiguous slice of the global batch."""
  local = global_batch_size // process_count
  start = position * global_batch_size + process_index * local
  return order[start:start + local]


class BatchAtStep:
  """The batch of global step g (epoch g // steps_per_epoch): a picklable function, so that
  grain's worker processes can each compute the batches of their own steps."""

  def __init__(self, source: Source, *, global_batch_size: int, seed: int, process_index: int,
               process_count: int, shuffle: bool):
    self._source = source
    self._seed = int(seed)
    self._shuffle = shuffle
    self._layout = {'global_batch_size': global_batch_size, 'process_index': process_index,
                    'process_count': process_count}
    self.steps_per_epoch = len(source) // global_batch_size
    self._order_epoch = None
    self._order = None
    self._order_lock = threading.Lock()  # grain's read-ahead thread and the caller

  def __getstate__(self):
    state = dict(self.__dict__)
    state['_order_epoch'] = state['_order'] = state['_order_lock'] = None
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._order_lock = threading.Lock()

  def indices(self, epoch: int, position: int) -> np.ndarray:
    with self._order_lock:
      if self._order_epoch != epoch:
        self._order = epoch_order(self._seed, epoch, len(self._source), self._shuffle)
        self._order_epoch = epoch
      order = self._order
    return local_indices(order, position, **self._layout)

  def at(self, epoch: int, position: int) -> dict[str, np.ndarray]:
    indices = self.indices(epoch, position)
    batch = self._source.get_batch(indices)
    batch['index'] = indices.astype(np.int32)
    return batch

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    return self.at(*divmod(int(step), self.steps_per_epoch))


class _StepIterator:
  """What both iterators share: the settings' checks, the batch of each step (`BatchAtStep`)
  and the (epoch, position) of the next batch, saved in checkpoints."""

  def __init__(self, source: Source, *, global_batch_size: int, seed: int, process_index: int,
               process_count: int, shuffle: bool):
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
    self._batch_at = BatchAtStep(source, global_batch_size=global_batch_size, seed=seed,
                                 process_index=process_index, process_count=process_count,
                                 shuffle=shuffle)
    self._epoch = 0
    self._position = 0
    self._settings = {'seed': int(seed), 'global_batch_size': global_batch_size,
                      'num_examples': len(source)}

  @property
  def steps_per_epoch(self) -> int:
    return self._batch_at.steps_per_epoch

  def get_state(self) -> dict[str, Any]:
    """JSON-serialisable position, saved in checkpoints."""
    return {'epoch': self._epoch, 'position': self._position, **self._settings}

  def set_state(self, state: dict[str, Any]) -> None:
    """Restores a position saved by `get_state`; refuses a state from different settings."""
    for key, mine in self._settings.items():
      if state.get(key) != mine:
        raise ValueError(
            f'cannot resume the data iterator: the checkpoint was written with {key}='
            f'{state.get(key)} but this run has {key}={mine}. Resume with the original '
            'config, or start a new --workdir.')
    self._epoch = int(state['epoch'])
    self._position = int(state['position'])
    self._moved()

  def _moved(self) -> None:
    """Called when the position was set from outside."""

  def _advance(self) -> None:
    self._position += 1
    if self._position >= self.steps_per_epoch:
      self._epoch, self._position = self._epoch + 1, 0


def _exit_with_parent(parent_pid: int, worker_index: int, worker_count: int) -> None:
  """Runs first in each grain worker: the worker ends when the training process does.

  Grain's workers stop when their iterator is closed; a training process killed with SIGKILL
  (a pre-empted job, the resume tests) closes nothing, and its workers would live on, orphaned,
  each holding a copy of the source. A thread of the worker checks its parent once a second.
  (Linux's PR_SET_PDEATHSIG is not used: it fires when the parent *thread* ends, and grain
  starts its workers from a thread of its own.)
  """
  del worker_index, worker_count

  def watch():
    while os.getppid() == parent_pid:
      time.sleep(1.0)
    os._exit(1)  # pylint: disable=protected-access

  if os.getppid() != parent_pid:  # the parent is already gone
    os._exit(1)  # pylint: disable=protected-access
  threading.Thread(target=watch, daemon=True, name='jssl-exit-with-parent').start()


class GrainIterator(_StepIterator):
  """Yields this process's share of each global batch, read by a grain pipeline.

  The same batches, in the same order, as `BatchIterator` (see the module docstring). With
  `workers=0` the next batch is read on a thread of this process; with `workers=W > 0`, W
  worker processes (spawned, each with its own copy of the source) compute the batches of
  steps g ≡ w (mod W) ahead, and grain hands them over in step order.
  """

  def __init__(self, source: Source, *, global_batch_size: int, seed: int,
               process_index: int = 0, process_count: int = 1, shuffle: bool = True,
               workers: int = 0, buffer_size: int = 1):
    super().__init__(source, global_batch_size=global_batch_size, seed=seed,
                     process_index=process_index, process_count=process_count, shuffle=shuffle)
    if workers < 0:
      raise ValueError(f'workers must be >= 0 (0 reads in this process), got {workers}; set '
                       '--config.dataset.workers to 0 or more.')
    if buffer_size < 1:
      raise ValueError(f'buffer_size must be >= 1, got {buffer_size}')
    self.workers = workers
    self._buffer_size = buffer_size
    self._iterator = None  # built at the first batch from the current position

  def _pipeline(self, first_step: int):
    import grain  # pylint: disable=g-import-not-at-top
    from absl import flags  # pylint: disable=g-import-not-at-top
    if not flags.FLAGS.is_parsed():
      # Grain reads its absl flags (`--grain_*`) when it starts workers. `jssl.main` has parsed
      # them; from a notebook or a test nothing has, and grain then takes their defaults.
      flags.FLAGS.mark_as_parsed()
    # Element i is the batch of step first_step + i; long enough for any run.
    steps = grain.MapDataset.range(first_step, first_step + 2**48).map(self._batch_at)
    if self.workers == 0:
      return iter(steps.to_iter_dataset(grain.ReadOptions(
          num_threads=1, prefetch_buffer_size=self._buffer_size)))
    return iter(steps.to_iter_dataset(grain.ReadOptions(num_threads=0)).mp_prefetch(
        grain.MultiprocessingOptions(num_workers=self.workers,
                                     per_worker_buffer_size=self._buffer_size),
        worker_init_fn=functools.partial(_exit_with_parent, os.getpid())))

  def _moved(self) -> None:
    self.close()

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    if self._iterator is None:
      self._iterator = self._pipeline(self._epoch * self.steps_per_epoch + self._position)
    batch = next(self._iterator)
    self._advance()
    return batch

  def close(self) -> None:
    """Stops the read-ahead (and the worker processes); the next batch starts a new pipeline
    at the current position."""
    if self._iterator is not None:
      iterator, self._iterator = self._iterator, None
      close = getattr(iterator, 'close', None)
      if close is not None:
        close()


class BatchIterator(_StepIterator):
  """Yields this process's share of each global batch, in a reproducible order; the next
  batch is read on one thread while the caller works on this one."""

  def __init__(self, source: Source, *, global_batch_size: int, seed: int,
               process_index: int = 0, process_count: int = 1, shuffle: bool = True,
               prefetch: bool = True):
    super().__init__(source, global_batch_size=global_batch_size, seed=seed,
                     process_index=process_index, process_count=process_count, shuffle=shuffle)
    self._executor = (concurrent.futures.ThreadPoolExecutor(max_workers=1)
                      if prefetch else None)
    self._pending: tuple[tuple[int, int], concurrent.futures.Future] | None = None

  def _moved(self) -> None:
    self._pending = None

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    key = (self._epoch, self._position)
    if self._pending is not None and self._pending[0] == key:
      batch = self._pending[1].result()
    else:
      batch = self._batch_at.at(*key)
    self._advance()
    if self._executor is not None:
      # Reads the next batch on a thread while the device works on this one. The thread only
      # reads; the position moves here, so the saved state is always the consumer's.
      following = (self._epoch, self._position)
      self._pending = (following, self._executor.submit(self._batch_at.at, *following))
    return batch

  def close(self) -> None:
    if self._executor is not None:
      self._executor.shutdown(wait=True, cancel_futures=True)
