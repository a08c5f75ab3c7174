"""Test-wide set-up: 8 simulated CPU devices, so sharding tests run in-process.

Must run before JAX initialises its backend (pytest imports conftest first). Arrays not
explicitly sharded stay on device 0, so single-device tests are unaffected.
"""

import os
import sys

_FLAG = '--xla_force_host_platform_device_count=8'
if _FLAG not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' ' + _FLAG).strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)
