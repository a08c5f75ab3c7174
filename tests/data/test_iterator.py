"""The deterministic, resumable batch iterators: the plain one and the grain pipeline."""

import pickle

import numpy as np
import pytest

from jssl.data.base import ArraySource
from jssl.data.graph import NodeSource
from jssl.data.text import TokenSource
from jssl.data.iterator import BatchAtStep
from jssl.data.iterator import BatchIterator
from jssl.data.iterator import GrainIterator


def _source(n=50):
  images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1).repeat(2, axis=1)
  return ArraySource(images=images, labels=np.arange(n, dtype=np.int32) % 7)


def _take(iterator, count):
  return [next(iterator)['index'].tolist() for _ in range(count)]


@pytest.mark.parametrize('prefetch', [True, False])
def test_epochs_are_permutations_and_drop_the_tail(prefetch):
  it = BatchIterator(_source(50), global_batch_size=8, seed=3, prefetch=prefetch)
  assert it.steps_per_epoch == 6
  epoch0 = _take(it, 6)
  flat = sum(epoch0, [])
  assert len(set(flat)) == 48  # 6 full batches of distinct examples, 2 dropped
  epoch1 = _take(it, 6)
  assert epoch0 != epoch1  # a new order each epoch
  assert it.get_state()['epoch'] == 2 and it.get_state()['position'] == 0
  batch = next(it)
  np.testing.assert_array_equal(batch['image'][:, 0, 0, 0], batch['index'])
  np.testing.assert_array_equal(batch['label'], batch['index'] % 7)


def test_same_seed_same_batches_different_seed_different_batches():
  a = _take(BatchIterator(_source(), global_batch_size=8, seed=1), 10)
  b = _take(BatchIterator(_source(), global_batch_size=8, seed=1), 10)
  c = _take(BatchIterator(_source(), global_batch_size=8, seed=2), 10)
  assert a == b and a != c


def test_resume_from_saved_state_continues_exactly():
  full = _take(BatchIterator(_source(), global_batch_size=8, seed=5), 15)
  first = BatchIterator(_source(), global_batch_size=8, seed=5)
  head = _take(first, 9)
  state = first.get_state()
  resumed = BatchIterator(_source(), global_batch_size=8, seed=5)
  _take(resumed, 2)  # a stale prefetch must not leak into the restored position
  resumed.set_state(state)
  assert head + _take(resumed, 6) == full


def test_processes_read_disjoint_slices_of_the_global_batch():
  whole = _take(BatchIterator(_source(), global_batch_size=8, seed=0), 7)
  parts = [_take(BatchIterator(_source(), global_batch_size=8, seed=0, process_index=p,
                               process_count=4), 7) for p in range(4)]
  for step in range(7):
    assert sum((parts[p][step] for p in range(4)), []) == whole[step]


def test_mismatched_resume_and_bad_sizes_are_clear_errors():
  it = BatchIterator(_source(), global_batch_size=8, seed=0)
  state = it.get_state()
  other = BatchIterator(_source(), global_batch_size=10, seed=0)
  with pytest.raises(ValueError, match='global_batch_size=8 but this run has global_batch_size=10'):
    other.set_state(state)
  with pytest.raises(ValueError, match='fewer than one global batch'):
    BatchIterator(_source(5), global_batch_size=8, seed=0)
  with pytest.raises(ValueError, match='not divisible by the number of processes'):
    BatchIterator(_source(), global_batch_size=10, seed=0, process_count=4)


def _grain_matches_plain(source, *, workers, process_count=1, restore_at=9, total=15):
  """The grain pipeline's batches equal BatchIterator's, also after a checkpoint restore."""
  for process_index in range(process_count):
    settings = dict(global_batch_size=8, seed=5, process_index=process_index,
                    process_count=process_count)
    plain = BatchIterator(source, **settings)
    want = [next(plain) for _ in range(total)]
    plain.close()
    grain_it = GrainIterator(source, workers=workers, **settings)
    got = [next(grain_it) for _ in range(restore_at)]
    state = grain_it.get_state()
    assert state == {**plain.get_state(), 'epoch': state['epoch'],
                     'position': state['position']}
    grain_it.close()
    # A new iterator (as after a restart) restored from the saved position.
    resumed = GrainIterator(source, workers=workers, **settings)
    resumed.set_state(state)
    got += [next(resumed) for _ in range(total - restore_at)]
    resumed.close()
    assert len(got) == len(want)
    for a, b in zip(got, want):
      assert sorted(a) == sorted(b)
      for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_grain_pipeline_in_process_gives_the_plain_iterators_batches():
  # 6 steps an epoch: the restore is in epoch 1, the run ends in epoch 2.
  _grain_matches_plain(_source(), workers=0, process_count=2)


# Two worker processes: tests/data/test_tfds.py, over a TFDS ArrayRecord source (decoded in
# the workers, the case workers are for).


def test_grain_iterator_errors_and_restore_checks():
  with pytest.raises(ValueError, match='workers must be >= 0'):
    GrainIterator(_source(), global_batch_size=8, seed=0, workers=-1)
  with pytest.raises(ValueError, match='fewer than one global batch'):
    GrainIterator(_source(5), global_batch_size=8, seed=0)
  it = GrainIterator(_source(), global_batch_size=8, seed=0)
  with pytest.raises(ValueError, match='seed=1 but this run has seed=0'):
    it.set_state({**it.get_state(), 'seed': 1})


@pytest.mark.parametrize('modality', ['image', 'text', 'graph'])
def test_sources_are_picklable_for_worker_processes(modality):
  """Grain sends the batch function, with its source, to each worker process (TFDS sources:
  tests/data/test_tfds.py runs them in workers)."""
  labels = np.arange(50, dtype=np.int32) % 7
  source = {
      'image': _source,
      'text': lambda: TokenSource(tokens=np.arange(500, dtype=np.int32).reshape(50, 10),
                                  labels=labels),
      'graph': lambda: NodeSource(node_ids=np.arange(50, dtype=np.int32)[::-1].copy(),
                                  labels=labels),
  }[modality]()
  batch_at = BatchAtStep(source, global_batch_size=8, seed=1, process_index=0,
                         process_count=1, shuffle=True)
  expected = batch_at(7)
  copy = pickle.loads(pickle.dumps(batch_at))
  got = copy(7)
  assert sorted(got) == sorted(expected)
  for key, value in got.items():
    np.testing.assert_array_equal(value, expected[key])
