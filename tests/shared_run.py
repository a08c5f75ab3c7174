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

# Flags that make XLA's CPU compiler faster at the cost of slower machine code; the suite's
# programs are tiny and run a few steps, so compiling is most of their time. Each leaves the
# HLO programs (partitioned and fused by the same passes) as they are:
# * backend optimisation level 0: LLVM's optimisations off (~30 % less compile time);
# * the fusion emitters off: fusions go through the older loop emitter instead of XLA's MLIR
#   pipeline (another ~30 % on the train steps of tests/methods/test_all_methods.py, measured
#   on the 2-core machine: SwAV's 4.4 s -> 2.7 s, MAE's 3.2 s -> 2.2 s);
# * LLVM's expensive passes off (a few per cent more).
# The in-process tests (tests/conftest.py) and the CLI runs of tests/test_main.py and
# test_sweep.py use them; a test compares runs made with the same flags.
FAST_CODEGEN = ' '.join(('--xla_backend_optimization_level=0',
                         '--xla_cpu_use_fusion_emitters=false',
                         '--xla_llvm_disable_expensive_passes=true'))


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
