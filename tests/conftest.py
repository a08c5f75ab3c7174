"""Test-wide set-up: 8 simulated CPU devices, so sharding tests run in-process.

Must run before JAX initialises its backend (pytest imports conftest first). Arrays not
explicitly sharded stay on device 0, so single-device tests are unaffected.
"""

import os
import sys

# Tests run tiny programs once, so XLA's compile time dominates the suite: LLVM's optimisation
# level 0 compiles about 35% faster, and numerical comparisons are always between runs made
# under the same flags.
FAST_COMPILE_FLAGS = ('--xla_backend_optimization_level=0 '
                      '--xla_llvm_disable_expensive_passes=true')
for _flag in ('--xla_force_host_platform_device_count=8', FAST_COMPILE_FLAGS):
  if _flag not in os.environ.get('XLA_FLAGS', ''):
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' ' + _flag).strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)
