"""Memory and time of the dense vs blockwise contrastive losses (loss + gradient, jitted).

  python experiments/blockwise_memory.py
  python experiments/blockwise_memory.py --sizes 1024 2048 --losses nt_xent --out /tmp/bw.md

For each loss (`nt_xent`: SimCLR's 2N x 2N; `info_nce`: MoCo's N queries against K = N shared
negatives), batch size N and implementation, one fresh Python process compiles
`jax.jit(jax.value_and_grad(loss))` ahead of time and reads XLA's `memory_analysis()` (temp +
argument + output bytes, no execution needed). If that total is at most `--max_gib`, the
process then runs the program on random inputs and measures its peak resident memory during
the calls (Linux's VmHWM, reset just before them) and the time per call: the median of several
calls after a warm-up call, or a single call (compiled ahead of time, so without compile time)
when one takes longer than `--single_run_s`. Programs above the limit are reported as
"not run (needs X GiB)" from the analysis.

Writes a Markdown table to `--out` with the machine, the JAX version, the date and the command.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOSSES = ('nt_xent', 'info_nce')
IMPLS = ('dense', 'blockwise')


def _status_kib(field: str) -> int:
  """A `kB` field of /proc/self/status (VmRSS, VmHWM) in KiB."""
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith(field + ':'):
        return int(line.split()[1])
  raise KeyError(field)


def _loss_fn(loss: str, impl: str, temperature: float, block_size: int):
  from jssl import losses  # pylint: disable=g-import-not-at-top
  table = {
      ('nt_xent', 'dense'): lambda z1, z2: losses.nt_xent(z1, z2, temperature=temperature),
      ('nt_xent', 'blockwise'): lambda z1, z2: losses.nt_xent_blockwise(
          z1, z2, temperature=temperature, block_size=block_size),
      ('info_nce', 'dense'): lambda q, k, neg: losses.info_nce(
          q, k, neg, temperature=temperature),
      ('info_nce', 'blockwise'): lambda q, k, neg: losses.info_nce_blockwise(
          q, k, neg, temperature=temperature, block_size=block_size),
  }
  return table[(loss, impl)]


def measure(loss: str, impl: str, n: int, args: argparse.Namespace) -> dict:
  """Compiles one program, reads its memory analysis and (if it fits) runs and times it."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  num_inputs = 2 if loss == 'nt_xent' else 3  # info_nce: query, key and K = N negatives
  fn = _loss_fn(loss, impl, args.temperature, args.block_size)
  step = jax.jit(jax.value_and_grad(fn, argnums=tuple(range(num_inputs))))
  shapes = [jax.ShapeDtypeStruct((n, args.dim), jnp.float32)] * num_inputs
  start = time.perf_counter()
  compiled = step.lower(*shapes).compile()
  analysis = compiled.memory_analysis()
  result = {
      'loss': loss, 'impl': impl, 'n': n,
      'compile_s': time.perf_counter() - start,
      'temp_bytes': analysis.temp_size_in_bytes,
      'argument_bytes': analysis.argument_size_in_bytes,
      'output_bytes': analysis.output_size_in_bytes,
  }
  result['total_bytes'] = (result['temp_bytes'] + result['argument_bytes']
                           + result['output_bytes'])
  if result['total_bytes'] > args.max_gib * 2**30:
    result['ran'] = False
    return result
  rng = np.random.default_rng(0)
  inputs = [jnp.asarray(rng.normal(size=(n, args.dim)), jnp.float32) for _ in range(num_inputs)]
  jax.block_until_ready(inputs)
  rss_before_kib = _status_kib('VmRSS')
  with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')  # resets VmHWM (the peak RSS) to the current RSS
  start = time.perf_counter()
  jax.block_until_ready(compiled(*inputs))
  first = time.perf_counter() - start
  times = [first]
  if first < args.single_run_s:  # that was the warm-up; time a few more
    repeats = 5 if first < 2 else 3
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      jax.block_until_ready(compiled(*inputs))
      times.append(time.perf_counter() - start)
  result.update(ran=True, seconds=statistics.median(times), runs=len(times),
                rss_before_bytes=rss_before_kib * 1024, peak_rss_bytes=_status_kib('VmHWM') * 1024)
  return result


def _size(num_bytes: float) -> str:
  if num_bytes >= 2**30:
    return f'{num_bytes / 2**30:.2f} GiB'
  return f'{num_bytes / 2**20:.1f} MiB'


def _time(seconds: float) -> str:
  return f'{seconds * 1e3:.0f} ms' if seconds < 1 else f'{seconds:.1f} s'


def _growth_exponents(rows: list[dict], loss: str, impl: str) -> list[float]:
  """log2 of the ratio of analysed totals between successive (doubling) sizes."""
  totals = [r['total_bytes'] for r in rows if r['loss'] == loss and r['impl'] == impl]
  return [math.log2(b / a) for a, b in zip(totals, totals[1:])]


def _summary(rows: list[dict], loss: str) -> str:
  """What the numbers of one loss show, worded from the measured growth."""
  dense = _growth_exponents(rows, loss, 'dense')
  blockwise = _growth_exponents(rows, loss, 'blockwise')
  if not dense or not blockwise:
    return ''
  # Over the last doublings, where the constant costs (arguments, runtime) no longer dominate.
  dense_power = statistics.mean(dense[-3:])
  blockwise_power = statistics.mean(blockwise[-3:])
  text = (f'Over the last doublings of N the analysed memory of `{loss}` grows as '
          f'N^{dense_power:.2f} (dense) and N^{blockwise_power:.2f} (blockwise)')
  if dense_power > 1.8 and blockwise_power < 1.2:
    text += ': quadratically for the dense loss, linearly for the blockwise one.'
  else:
    text += '.'
  for impl in IMPLS:
    ran = [r for r in rows if r['loss'] == loss and r['impl'] == impl and r['ran']]
    if len(ran) >= 2:
      first, last = ran[0], ran[-1]
      text += (f' Measured, the peak RSS of {impl} rose {_size(first["peak_rss_bytes"])} -> '
               f'{_size(last["peak_rss_bytes"])} from N = {first["n"]} to N = {last["n"]} '
               f'({_size(first["peak_rss_bytes"] - first["rss_before_bytes"])} -> '
               f'{_size(last["peak_rss_bytes"] - last["rss_before_bytes"])} above the RSS before '
               'the calls).')
  return text


def write_table(rows: list[dict], args: argparse.Namespace, command: str, machine: str,
                loads: tuple[str, str]) -> str:
  import jax  # pylint: disable=g-import-not-at-top
  lines = [
      '# Dense vs blockwise contrastive losses: memory and time',
      '',
      f'- Machine: {machine}. JAX {jax.__version__}, CPU backend, float32.',
      f'- Date: {datetime.date.today().isoformat()}. Load average (1, 5, 15 min) at the start '
      f'{loads[0]}, at the end {loads[1]} (the cores were shared with other work, so times are '
      'upper bounds).',
      f'- Command: `{command}`',
      f'- Program: `jax.jit(jax.value_and_grad(loss))` over all inputs, D = {args.dim}, '
      f'temperature {args.temperature}, blockwise block_size {args.block_size}. `nt_xent`: '
      'z1, z2 [N, D] (a 2N x 2N similarity matrix when dense); `info_nce`: query, key [N, D] '
      'and K = N shared negatives [N, D] (N x K logits when dense).',
      '- XLA analysis: `compiled.memory_analysis()` temp + argument + output bytes, without '
      'running. Peak RSS: the process\'s peak resident memory during the calls (VmHWM reset '
      'after compiling and creating the inputs), so it includes the inputs and the JAX runtime; '
      '"RSS before" is the resident memory just before the first call. Time: median of `runs` '
      f'calls after a warm-up call, or one call when it took over {args.single_run_s:.0f} s.',
      f'- Programs whose analysis exceeds {args.max_gib:g} GiB are not run.',
      '',
      '| loss | N | impl | XLA temp | XLA temp + args + outputs | peak RSS (RSS before) | '
      'time / call | runs |',
      '|---|---:|---|---:|---:|---:|---:|---:|',
  ]
  for r in rows:
    if r['ran']:
      rss = f'{_size(r["peak_rss_bytes"])} ({_size(r["rss_before_bytes"])})'
      timing, runs = _time(r['seconds']), str(r['runs'])
    else:
      rss = f'not run (needs {_size(r["total_bytes"])})'
      timing, runs = 'not run', '0'
    lines.append(f'| {r["loss"]} | {r["n"]} | {r["impl"]} | {_size(r["temp_bytes"])} | '
                 f'{_size(r["total_bytes"])} | {rss} | {timing} | {runs} |')
  lines.append('')
  for loss in args.losses:
    summary = _summary(rows, loss)
    if summary:
      lines.append(summary)
      lines.append('')
  return '\n'.join(lines)


def _machine() -> str:
  cores = os.cpu_count()
  model = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      model = next(line.split(':', 1)[1].strip() for line in f
                   if line.startswith('model name'))
  except (OSError, StopIteration):
    pass
  with open('/proc/meminfo') as f:
    total_kib = int(next(line for line in f if line.startswith('MemTotal')).split()[1])
  return (f'{cores}-core {platform.machine()} CPU ({model}), {total_kib / 2**20:.0f} GiB RAM '
          f'shared with other processes, {platform.system()}')


def _load() -> str:
  return ', '.join(f'{x:.1f}' for x in os.getloadavg())


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--sizes', type=int, nargs='+',
                      default=[1024, 2048, 4096, 8192, 16384, 32768, 65536])
  parser.add_argument('--losses', nargs='+', choices=LOSSES, default=list(LOSSES))
  parser.add_argument('--dim', type=int, default=128)
  parser.add_argument('--temperature', type=float, default=0.1)
  parser.add_argument('--block_size', type=int, default=1024)
  parser.add_argument('--max_gib', type=float, default=8.0,
                      help='programs whose XLA analysis needs more are not run')
  parser.add_argument('--single_run_s', type=float, default=30.0,
                      help='a first call longer than this is the only timed call')
  parser.add_argument('--out', default=os.path.join(REPO, 'experiments', 'results',
                                                    'blockwise_memory.md'))
  parser.add_argument('--measure', help=argparse.SUPPRESS)  # child: loss:impl:n
  args = parser.parse_args()

  if args.measure:
    loss, impl, n = args.measure.split(':')
    print(json.dumps(measure(loss, impl, int(n), args)))
    return

  command = 'python ' + ' '.join([os.path.relpath(__file__, REPO)] + sys.argv[1:])
  loads = [_load()]
  rows = []
  for loss in args.losses:
    for n in args.sizes:
      for impl in IMPLS:
        # A fresh process per program, so each peak RSS is its own.
        child = [sys.executable, os.path.abspath(__file__), f'--measure={loss}:{impl}:{n}',
                 f'--dim={args.dim}', f'--temperature={args.temperature}',
                 f'--block_size={args.block_size}', f'--max_gib={args.max_gib}',
                 f'--single_run_s={args.single_run_s}']
        output = subprocess.run(child, check=True, capture_output=True, text=True, cwd=REPO,
                                env={**os.environ, 'PYTHONPATH': os.pathsep.join(
                                    [REPO] + os.environ.get('PYTHONPATH', '').split(os.pathsep))
                                }).stdout
        row = json.loads(output.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
  loads.append(_load())
  table = write_table(rows, args, command, _machine(), tuple(loads))
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, 'w') as f:
    f.write(table)
  print(table)


if __name__ == '__main__':
  main()
