"""Multi-process (multi-host) start-up: `initialize(...)` before anything touches a device.

Each process runs the same command; JAX then sees every process's devices as one global mesh
and the loop feeds each process its own slice of every batch. Give the three settings
explicitly (any cluster, or several processes on one machine), or none of them to let JAX
detect them from SLURM or a Cloud TPU slice.
"""

from __future__ import annotations

import jax


def check_settings(coordinator_address: str | None, num_processes: int | None,
                   process_id: int | None) -> None:
  """Raises ValueError (naming the fix) for an incomplete or impossible explicit setting."""
  given = {'--coordinator_address': coordinator_address, '--num_processes': num_processes,
           '--process_id': process_id}
  if all(v is None for v in given.values()):
    return
  missing = [name for name, value in given.items() if value is None]
  if missing:
    raise ValueError(
        f'{", ".join(missing)} missing: give --coordinator_address=HOST:PORT, '
        '--num_processes=N and --process_id=I together (the same address and N on every '
        'process, I = 0..N-1), or none of them under SLURM or on a Cloud TPU slice.')
  host, _, port = coordinator_address.rpartition(':')
  if not host or not port.isdigit():
    raise ValueError(f'--coordinator_address={coordinator_address!r} is not HOST:PORT (e.g. '
                     '10.0.0.1:1234, the address of the process with --process_id=0).')
  if num_processes < 1:
    raise ValueError(f'--num_processes={num_processes} must be at least 1.')
  if not 0 <= process_id < num_processes:
    raise ValueError(f'--process_id={process_id} must be in [0, {num_processes - 1}] '
                     f'(--num_processes={num_processes}).')


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, timeout_s: int = 300) -> None:
  """`jax.distributed.initialize`, with gloo collectives so that CPU-only processes can talk.

  Must run before JAX creates its backends. Raises ValueError for bad settings and
  RuntimeError (with the settings used) when the processes cannot connect.
  """
  check_settings(coordinator_address, num_processes, process_id)
  # The CPU backend's cross-process collectives (GPU and TPU backends have their own; this
  # setting does not affect them). Recent JAX defaults to gloo, older ones to none.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  try:
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id,
                               initialization_timeout=timeout_s)
  except (RuntimeError, ValueError) as error:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if coordinator_address is None:
      how = ('no cluster was detected: outside SLURM or a Cloud TPU slice give '
             '--coordinator_address=HOST:PORT --num_processes=N --process_id=I')
    else:
      how = (f'check that process 0 runs on {coordinator_address} and that all '
             f'{num_processes} processes start within {timeout_s} s')
    raise RuntimeError(f'jax.distributed.initialize failed ({first}); {how}.') from None
