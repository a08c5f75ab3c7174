"""Work done once per test session and shared by every pytest-xdist worker.

A session-scoped fixture runs once per worker; the CLI runs that several tests compare
against (tests/test_main.py) are too expensive to run twice. `once` runs `build` under a file
lock in the session's base temporary directory, which all workers share: the first worker
to ask builds, the others wait for it and reuse the result. Independent of how xdist
distributes tests (its `loadgroup` mode stopped grouping with pytest 9.2).
"""

import fcntl
import json
import os

# XLA's backend optimisation level 0 (LLVM's optimisations off): the same HLO programs,
# partitioned and fused by the same passes, turned into less optimised machine code, which
# compiles ~30 % faster. The suite's programs are tiny and run a few steps, so compiling is
# most of their time: the in-process tests (tests/conftest.py) and the CLI runs of
# tests/test_main.py and test_sweep.py use it; a test compares runs made with the same flags.
FAST_CODEGEN = '--xla_backend_optimization_level=0'


def once(tmp_path_factory, name, build):
  """Runs `build(directory)` once per session; returns (directory, what build returned).

  `build` must return something JSON-serialisable. Tests must not modify `directory` (copy it
  first).
  """
  root = tmp_path_factory.getbasetemp()
  if os.environ.get('PYTEST_XDIST_WORKER'):
    root = root.parent  # the session's directory, above the per-worker ones
  directory = root / f'shared_{name}'
  with open(root / f'shared_{name}.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    done = root / f'shared_{name}.json'
    if not done.exists():
      directory.mkdir(exist_ok=True)
      result = build(str(directory))
      done.write_text(json.dumps(result))
    return str(directory), json.loads(done.read_text())
