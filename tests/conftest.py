"""Test-wide set-up: 8 simulated CPU devices, so sharding tests run in-process.

Must run before JAX initialises its backend (pytest imports conftest first). Arrays not
explicitly sharded stay on device 0, so single-device tests are unaffected.
"""

import atexit
import os
import shutil
import sys
import tempfile

from shared_run import FAST_CODEGEN

# In-process tests compile with the fast-compiling flags of shared_run.FAST_CODEGEN (the same HLO
# passes, less optimised machine code), as do the CLI runs of tests/test_main.py and
# test_sweep.py, which set their own XLA_FLAGS.
for _flag in ('--xla_force_host_platform_device_count=8', *FAST_CODEGEN.split()):
  if _flag.split('=')[0] not in os.environ.get('XLA_FLAGS', ''):
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' ' + _flag).strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

# One persistent XLA compilation cache for the whole session, inherited by the xdist workers
# and the CLI subprocesses (they copy this environment): a program compiled once (e.g. the
# train step of a CLI run that a test kills and resumes) is loaded, not compiled, the next
# time. A fresh directory per session, so the suite's time is that of a clean machine.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _CACHE = tempfile.mkdtemp(prefix='jssl-test-xla-cache-')
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _CACHE
  atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
# Every program is cached, however fast it compiled: a CLI run (a process of its own) then
# loads the evaluation's and the probes' many small programs that an earlier run compiled
# (a tiny GAN run whose programs are all cached: 15.8 s -> 11.0 s with this at 0 instead
# of 0.2), and in-process tests share programs with the same HLO across Runs and workers.
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')


# The longest tests, the CLI runs in subprocesses, are handed to the workers first, so that
# the suite does not end on one of them with the other core idle. Within tests/test_main.py
# each run that several tests share (tests/shared_run.py) is built by the first test that
# needs it, with independent runs between it and the tests that reuse it, so that a worker
# rarely waits for the other one to finish building.
_FIRST = (
    'tests/test_main.py::test_run_writes_metrics_plot_checkpoints_and_reports',  # uninterrupted
    'tests/test_main.py::test_sigkill_resume_restores_queues_banks_and_targets[moco.py]',
    'tests/test_main.py::test_two_processes_equal_eight_devices_and_resume_exactly_after_sigkill',
    'tests/test_sweep.py::test_sweep_cli_killed_and_rerun_finishes_only_the_missing_points',
    'tests/test_main.py::test_sigkill_resume_restores_queues_banks_and_targets'
    '[instdisc.py:digits_nce]',
    'tests/test_main.py::test_sigkill_then_resume_reproduces_the_uninterrupted_run',
    'tests/test_main.py::test_sigkill_resume_restores_queues_banks_and_targets[dino.py]',
    'tests/test_main.py::test_sigkill_resume_restores_queues_banks_and_targets[gan.py:digits]',
    'tests/test_main.py::test_non_finite_loss_stops_naming_the_step_and_keeps_the_checkpoint',
    'tests/test_main.py::test_eight_devices_give_the_same_losses_as_one',
    'tests/test_cli_errors.py::test_bad_command_lines_end_in_one_clean_message',
    'tests/test_main.py::test_corrupt_newest_checkpoint_falls_back_and_ends_like_the_clean_run',
    'tests/test_main.py::test_changed_config_is_refused_and_nothing_in_the_workdir_changes',
)


def pytest_collection_modifyitems(items):
  rank = {nodeid: r for r, nodeid in enumerate(_FIRST)}
  items.sort(key=lambda item: rank.get(item.nodeid, len(rank)))  # stable: the rest in order
