"""jssl.data.base.build_lock: a cache shared by concurrent processes is built once."""

import os
import threading
import time

import numpy as np

from jssl.data.base import build_lock


def test_build_lock_builds_a_cache_once_for_concurrent_callers(tmp_path):
  """Two threads (separate open files, as two processes) asking for one cache file: one
  builds it while the other waits, then reads it."""
  path = str(tmp_path / 'cache' / 'thing.npy')
  builds, results = [], []

  def get():
    with build_lock(path):
      if not os.path.exists(path):
        builds.append(1)
        time.sleep(0.3)
        np.save(path, np.arange(3))
      results.append(np.load(path))

  threads = [threading.Thread(target=get) for _ in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert len(builds) == 1 and len(results) == 2
  for result in results:
    np.testing.assert_array_equal(result, np.arange(3))
