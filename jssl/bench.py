"""Benchmark of the shared train step: `python -m jssl.bench --config=experiments/configs/X.py`.

Builds the run exactly as training does (`jssl.train.loop.Run`: dataset, mesh, method, optimizer,
state, the jitted `train_step` with its shardings and donation) and measures the step that
training repeats (augmentation on device + method loss + optimizer + online probe):

  compile    `train_step.lower(state, batch)` and `.compile()`, timed apart from execution;
  step time  median and spread of `--steps` steps after `--warmup`, each waited for with
             `block_until_ready`. Batches are real ones from the run's iterator, transferred to
             the devices *before* timing (a pool of `--batches`, used in turn), so the time is the
             device step alone: no host data loading or host-to-device copy;
  images/s   global batch / median step time (each image gives `views` views, e.g. 2 for SimCLR);
  memory     the compiled program's `memory_analysis()` (argument / output / temp bytes), the
             process's peak RSS, and on GPU/TPU the device's `peak_bytes_in_use`;
  FLOPs      XLA's `cost_analysis()` of the compiled step (every op it counts, not only convs and
             matmuls) / step time = achieved FLOP/s; MFU = achieved / the *measured* peak: the
             FLOP/s of a large matmul (float32 4096^2 on CPU; 8192^2 in the model's dtype on
             GPU/TPU) on one device, times the number of devices.

Overrides and variants as for `jssl.main`:
  python -m jssl.bench --config=experiments/configs/simclr.py:fashion_mnist --steps=30 \
      --out=/tmp/bench.json
  python -m jssl.bench --config=experiments/configs/simclr.py --config.batch_size=512
`--augment=false` replaces the augmentation by a deterministic resize (the views are then
identical), to time the model, loss and optimizer alone.

`--data_only` times the input pipeline alone instead (no device, no step): the run's training
iterator (`jssl.data.GrainIterator`: read, decode, resize, batch) for each worker count of
`--data_workers`, `--data_batches` batches after the first `--data_warmup` (which include
starting the worker processes). It reports images/s (wall clock), the CPU time spent per image
by this process and its workers together, and from that the cores a host needs to feed
`--gpus` accelerators at `--images_per_s_per_gpu` each:
  python experiments/jpeg_dataset.py --data_dir=/tmp/tfds --num_images=4096
  python -m jssl.bench --data_only --config=experiments/configs/simclr.py:imagenet2012 \
      --config.dataset.name=tfds:jssl_jpeg224 --config.dataset.data_dir=/tmp/tfds \
      --config.dataset.stored_size=224 --config.batch_size=256 --data_workers=0,1,2
"""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from typing import Any

from absl import app
from absl import flags
from ml_collections import config_flags

from jssl import cli

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file, e.g. experiments/configs/simclr.py[:variant].',
    lock_config=True)
_STEPS = flags.DEFINE_integer('steps', 20, 'Timed steps (after the warm-up).', lower_bound=1)
_WARMUP = flags.DEFINE_integer('warmup', 3, 'Untimed steps run first.', lower_bound=0)
_BATCHES = flags.DEFINE_integer('batches', 4, 'Distinct real batches transferred to the '
                                'devices before timing and used in turn.', lower_bound=1)
_AUGMENT = flags.DEFINE_bool('augment', True, 'Augment on device as training does; false '
                             'replaces augmentation by a deterministic resize of each view.')
_DIAGNOSTICS = flags.DEFINE_bool('diagnostics', True, 'Compute the per-step collapse '
                                  'diagnostics (false: time the step without them).')
_ONLINE_PROBE = flags.DEFINE_bool('online_probe', True, 'Train the online linear probe '
                                  '(false: time the step without it).')
_PEAK_SIZE = flags.DEFINE_integer('peak_matmul_size', 0, 'Side of the square matmul timed for '
                                  'the peak FLOP/s; 0: 4096 on CPU, 8192 on GPU/TPU.',
                                  lower_bound=0)
_OUT = flags.DEFINE_string('out', None, 'Write the results as JSON to this path.')
_DATA_ONLY = flags.DEFINE_bool('data_only', False, 'Time the input pipeline alone (no device '
                               'step): decoded images/s for each of --data_workers.')
_DATA_WORKERS = flags.DEFINE_list('data_workers', ['0', '1', '2'], 'Worker process counts '
                                  'timed by --data_only.')
_DATA_BATCHES = flags.DEFINE_integer('data_batches', 20, 'Batches timed by --data_only, per '
                                     'worker count.', lower_bound=1)
_DATA_WARMUP = flags.DEFINE_integer('data_warmup', 2, 'Batches read before timing (workers '
                                    'start during them).', lower_bound=1)
_GPUS = flags.DEFINE_integer('gpus', 8, 'Accelerators per host that --data_only sizes the '
                             'host for.', lower_bound=1)
_GPU_RATE = flags.DEFINE_float('images_per_s_per_gpu', 3000.0, 'Images/s each accelerator '
                               'consumes (the step rate the GPU benchmark measures).',
                               lower_bound=0.0)
flags.mark_flags_as_required(['config'])

log = logging.getLogger(__name__)


def flops_of(compiled) -> float:
  """FLOPs of one call of a compiled program, from XLA's cost analysis.

  `Compiled.cost_analysis()` returns a dict in jax 0.10 and returned a list with one dict per
  program in older versions; both are accepted (the list's entries are added up).

  Raises:
    ValueError: the backend reports no 'flops'.
  """
  analysis = compiled.cost_analysis()
  entries = analysis if isinstance(analysis, (list, tuple)) else [analysis]
  entries = [entry for entry in entries if entry]
  if not entries or not all('flops' in entry for entry in entries):
    raise ValueError(f'XLA reported no FLOP count for this program (cost_analysis() returned '
                     f'{analysis!r}); MFU cannot be computed on this backend.')
  return float(sum(entry['flops'] for entry in entries))


def measure_peak_flops(device, *, size: int, dtype, repeats: int = 5) -> dict[str, Any]:
  """FLOP/s of a `size` x `size` matmul on one device: the best of `repeats` timed calls.

  Returns:
    {'flops_per_s', 'size', 'dtype', 'time_s'} of the fastest call (2 size^3 FLOPs each).
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  keys = jax.random.split(jax.random.key(0))
  a, b = (jax.device_put(jax.random.normal(k, (size, size), jnp.float32).astype(dtype), device)
          for k in keys)
  # Chain the product into the next call so no call can be skipped or overlapped.
  matmul = jax.jit(lambda x, y: (x @ y) * jnp.asarray(1e-3, dtype)).lower(a, b).compile()
  a = jax.block_until_ready(matmul(a, b))
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    a = jax.block_until_ready(matmul(a, b))
    best = min(best, time.perf_counter() - start)
  return {'flops_per_s': 2.0 * size**3 / best, 'size': size, 'dtype': jnp.dtype(dtype).name,
          'time_s': best}


def _memory(compiled, devices) -> dict[str, Any]:
  stats = compiled.memory_analysis()
  memory = {
      'argument_bytes': int(stats.argument_size_in_bytes),
      'output_bytes': int(stats.output_size_in_bytes),
      'alias_bytes': int(stats.alias_size_in_bytes),  # outputs that reuse donated arguments
      'temp_bytes': int(stats.temp_size_in_bytes),
      # Linux reports ru_maxrss in KiB.
      'process_peak_rss_bytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
      'device_peak_bytes_in_use': None,
  }
  device_stats = [device.memory_stats() for device in devices]
  if all(s and 'peak_bytes_in_use' in s for s in device_stats):  # GPU, TPU; None on CPU
    memory['device_peak_bytes_in_use'] = max(int(s['peak_bytes_in_use']) for s in device_stats)
  return memory


def _eval_views(key, images, views):
  """Stand-in for `augment.augment_views` without augmentation: each view resized, no noise."""
  from jssl import augment  # pylint: disable=g-import-not-at-top
  del key
  return tuple(augment.eval_view(images, view.out_size) for view in views)


def benchmark(config, *, steps: int = 20, warmup: int = 3, num_batches: int = 4,
              augment: bool = True, diagnostics: bool = True, online_probe: bool = True,
              peak_matmul_size: int = 0) -> dict[str, Any]:
  """Compiles and times the shared train step of `config`; returns the results as a dict.

  Args:
    config: an experiment config (validated here, as `jssl.main` does).
    steps: timed steps.
    warmup: untimed steps before them.
    num_batches: distinct real batches transferred before timing and used in turn.
    augment: False replaces augmentation by `augment.eval_view` of every view.
    diagnostics: False leaves the collapse diagnostics out of the step.
    online_probe: False leaves the online probe's training out of the step.
    peak_matmul_size: side of the matmul timed for the peak FLOP/s (0: 4096 CPU, 8192 GPU/TPU).

  Returns:
    A JSON-serialisable dict; see the module docstring for what each number is.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jax.sharding import NamedSharding  # pylint: disable=g-import-not-at-top
  from jax.sharding import PartitionSpec as P  # pylint: disable=g-import-not-at-top
  from jssl import models  # pylint: disable=g-import-not-at-top
  from jssl.train.loop import Run  # pylint: disable=g-import-not-at-top
  from jssl.augment import augment_views  # pylint: disable=g-import-not-at-top
  from jssl.train.step import make_train_step  # pylint: disable=g-import-not-at-top

  with tempfile.TemporaryDirectory() as workdir:  # Run writes nothing; it wants a directory
    run = Run(config, workdir)
  try:
    if not augment and run.method.prepare is not None:
      from jssl.config import ConfigError  # pylint: disable=g-import-not-at-top
      raise ConfigError(f'--augment=false swaps the image views for a deterministic resize; '
                        f'{run.method.name} prepares its own inputs (no image views), so time it '
                        'with --augment=true.')
    train_step = run.train_step
    if not (augment and diagnostics and online_probe):
      train_step = jax.jit(
          make_train_step(run.method, run.optimizer, run.probe_optimizer, run.schedule,
                          augment_views=augment_views if augment else _eval_views,
                          collapse_diagnostics=diagnostics,
                          online_probe=online_probe),
          in_shardings=(run.state_sharding, run.batch_sharding, NamedSharding(run.mesh, P())),
          out_shardings=(run.state_sharding, NamedSharding(run.mesh, P())),
          donate_argnums=0)
    run.start_epoch(0)  # methods with an epoch hook (DeepCluster) need it before step 0
    batches = [run.device_batch(next(run.iterator)) for _ in range(num_batches)]
    jax.block_until_ready(batches)

    start = time.perf_counter()
    lowered = train_step.lower(run.state, batches[0], run.constants)
    lowered_at = time.perf_counter()
    compiled = lowered.compile()
    compiled_at = time.perf_counter()

    state = run.state
    for i in range(warmup):
      state, metrics = compiled(state, batches[i % num_batches], run.constants)
      jax.block_until_ready((state, metrics))
    times, cpu_times = [], []
    for i in range(steps):
      batch = batches[(warmup + i) % num_batches]
      start_step, start_cpu = time.perf_counter(), time.process_time()
      state, metrics = compiled(state, batch, run.constants)
      jax.block_until_ready((state, metrics))
      times.append(time.perf_counter() - start_step)
      cpu_times.append(time.process_time() - start_cpu)
    loss = float(metrics['loss'])
    nonfinite_step = int(state.nonfinite_step)
    memory = _memory(compiled, run.mesh.devices.flat)
  finally:
    run.iterator.close()

  device = run.mesh.devices.flat[0]
  if device.platform == 'cpu':
    peak_dtype, default_size = jnp.float32, 4096
  else:
    peak_dtype, default_size = models.DTYPES[config.model.dtype], 8192
  peak = measure_peak_flops(device, size=peak_matmul_size or default_size, dtype=peak_dtype)
  num_devices = run.mesh.devices.size
  peak_flops_per_s = peak['flops_per_s'] * num_devices

  step_time = statistics.median(times)
  quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
  flops = flops_of(compiled)
  achieved = flops / step_time
  num_views = len(run.method.views)
  # Text: each example is a sequence of config.model.max_length positions (BERT's packed
  # pair [CLS] A [SEP] B [SEP]); tokens/s counts them, padding included.
  positions = config.model.max_length if run.modality == 'text' else None
  series_steps = None
  if run.modality == 'series':  # CPC's training windows: steps per series, padding included
    series_steps = config.cpc.get('crop_length') or run.dataset.series_shape[0]
  return {
      'method': config.method,
      'modality': run.modality,
      'sequence_positions': positions,
      'tokens_per_s': config.batch_size * positions / step_time if positions else None,
      'series_steps': series_steps,
      'dataset': config.dataset.name,
      'encoder': config.model.encoder,
      'layers': config.model.get('num_layers'),
      'width': config.model.get('hidden_dim'),
      'widths': list(config.model.widths) if config.model.get('widths') else None,
      'dtype': config.model.dtype,
      'image_size': config.dataset.image_size,
      'batch_size': config.batch_size,
      'views': num_views,
      'augment': augment,
      'diagnostics': diagnostics,
      'online_probe': online_probe,
      'batches': f'{num_batches} real batches transferred before timing, used in turn',
      'platform': device.platform,
      'device_kind': device.device_kind,
      'device_count': num_devices,
      'cpu_count': os.cpu_count(),
      'cpu_affinity': len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None,
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'jax_version': jax.__version__,
      'python': platform.python_version(),
      'lower_s': lowered_at - start,
      'compile_s': compiled_at - lowered_at,
      'lower_and_compile_s': compiled_at - start,
      'warmup': warmup,
      'steps': steps,
      'step_time_s': step_time,
      'step_time_min_s': min(times),
      'step_time_p25_s': quartiles[0],
      'step_time_p75_s': quartiles[2],
      'step_time_max_s': max(times),
      'step_times_s': times,
      # CPU time of this process (all its threads) per step: on a shared CPU it moves less
      # with other processes' load than the wall time does.
      'step_cpu_time_s': statistics.median(cpu_times),
      'images_per_s': config.batch_size / step_time,
      'views_per_s': config.batch_size * num_views / step_time,
      'flops_per_step': flops,
      'achieved_flops_per_s': achieved,
      'peak_flops_per_s': peak_flops_per_s,
      'peak_matmul': {**peak, 'devices': num_devices},
      'mfu': achieved / peak_flops_per_s,
      'memory': memory,
      'final_loss': loss,
      'nonfinite_step': nonfinite_step,
  }


def _cpu_seconds(process) -> float:
  """User + system CPU seconds of `process` (psutil) and its live child processes."""
  total = 0.0
  for p in [process, *process.children(recursive=True)]:
    try:
      times = p.cpu_times()
    except Exception:  # pylint: disable=broad-except  (a child that just exited)
      continue
    total += times.user + times.system
  return total


def data_benchmark(config, *, workers=(0, 1, 2), batches: int = 20, warmup: int = 2,
                   gpus: int = 8, images_per_s_per_gpu: float = 3000.0) -> dict[str, Any]:
  """Times the run's training input pipeline alone, for each worker count.

  Args:
    config: an experiment config; its dataset, batch size and seed are read (validated first).
    workers: worker process counts to time (0 = read in this process).
    batches: batches timed per worker count.
    warmup: batches read first, untimed (worker start-up happens there).
    gpus, images_per_s_per_gpu: the host to size: cores needed =
      gpus * images_per_s_per_gpu * (CPU seconds per image).

  Returns:
    A JSON-serialisable dict with one row per worker count.
  """
  import psutil  # pylint: disable=g-import-not-at-top
  from jssl import data  # pylint: disable=g-import-not-at-top
  from jssl.config import validate_config  # pylint: disable=g-import-not-at-top
  from jssl.train.loop import load_run_dataset  # pylint: disable=g-import-not-at-top

  validate_config(config, device_count=1, process_count=1)
  dataset = load_run_dataset(config)
  source = dataset.train
  process = psutil.Process()
  rows = []
  for count in workers:
    iterator = data.GrainIterator(source, global_batch_size=config.batch_size,
                                  seed=config.seed, workers=count)
    try:
      start = time.perf_counter()
      for _ in range(warmup):
        next(iterator)
      first_batches_s = time.perf_counter() - start
      cpu_start, start = _cpu_seconds(process), time.perf_counter()
      for _ in range(batches):
        batch = next(iterator)
      wall = time.perf_counter() - start
      cpu = _cpu_seconds(process) - cpu_start
    finally:
      iterator.close()
    images = batches * config.batch_size
    cpu_per_image = cpu / images
    rows.append({
        'workers': count,
        'images_per_s': images / wall,
        'wall_s': wall,
        'cpu_s': cpu,
        'cpu_ms_per_image': 1e3 * cpu_per_image,
        'images_per_core_s': 1 / cpu_per_image if cpu_per_image > 0 else None,
        'cores_to_feed': gpus * images_per_s_per_gpu * cpu_per_image,
        'warmup_s': first_batches_s,
    })
  example = {k: [list(v.shape), str(v.dtype)] for k, v in batch.items()}
  return {
      'dataset': config.dataset.name,
      'train_examples': len(source),
      'source': repr(source),
      'batch': example,
      'batch_size': config.batch_size,
      'batches': batches,
      'warmup': warmup,
      'gpus': gpus,
      'images_per_s_per_gpu': images_per_s_per_gpu,
      'cpu_count': os.cpu_count(),
      'cpu_affinity': len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None,
      'python': platform.python_version(),
      'rows': rows,
  }


def data_summary(results: dict[str, Any]) -> str:
  """A table of `data_benchmark`'s rows."""
  r = results
  lines = [f"input pipeline of {r['dataset']} ({r['train_examples']} training examples), "
           f"batch {r['batch_size']}, {r['batches']} batches timed; {r['cpu_count']} cores",
           f"{'workers':>7} {'images/s':>9} {'CPU ms/image':>12} {'images/core-s':>13} "
           f"cores for {r['gpus']} x {r['images_per_s_per_gpu']:.0f} images/s"]
  for row in r['rows']:
    lines.append(f"{row['workers']:>7} {row['images_per_s']:>9.1f} "
                 f"{row['cpu_ms_per_image']:>12.3f} {row['images_per_core_s'] or 0:>13.1f} "
                 f"{row['cores_to_feed']:.1f}")
  return '\n'.join(lines)


def _mib(n):
  return 'n/a' if n is None else f'{n / 2**20:.1f} MiB'


def summary(results: dict[str, Any]) -> str:
  """A few readable lines of `benchmark`'s results."""
  r, m = results, results['memory']
  peak = r['peak_matmul']
  if r.get('sequence_positions'):
    model = (f"Transformer {r['layers']} layers, width {r['width']}, {r['dtype']}, "
             f"batch {r['batch_size']} x {r['sequence_positions']} positions")
    rate = (f"throughput   {r['images_per_s']:.1f} sequences/s "
            f"({r['tokens_per_s']:.0f} tokens/s)")
  elif r.get('series_steps'):
    model = (f"1-D conv encoder + GRU, {r['dtype']}, batch {r['batch_size']} series x "
             f"{r['series_steps']} steps")
    rate = (f"throughput   {r['images_per_s']:.1f} sequences/s "
            f"({r['images_per_s'] * r['series_steps']:.0f} steps/s)")
  else:
    model = (f"{r['encoder']} {r['image_size']}x{r['image_size']} {r['dtype']}, batch "
             f"{r['batch_size']} x {r['views']} views"
             f"{'' if r['augment'] else ' (augmentation off)'}")
    rate = f"throughput   {r['images_per_s']:.1f} images/s ({r['views_per_s']:.1f} views/s)"
  lines = [
      f"{r['method']} on {r['dataset']}: {model}; "
      f"{r['device_count']} x {r['platform']} ({r['device_kind']})",
      f"compile      {r['lower_s']:.2f} s lower + {r['compile_s']:.2f} s compile",
      f"step time    {1e3 * r['step_time_s']:.2f} ms median over {r['steps']} steps "
      f"(min {1e3 * r['step_time_min_s']:.2f}, quartiles {1e3 * r['step_time_p25_s']:.2f}-"
      f"{1e3 * r['step_time_p75_s']:.2f}, max {1e3 * r['step_time_max_s']:.2f} ms; "
      f"process CPU time {1e3 * r['step_cpu_time_s']:.2f} ms/step)",
      rate,
      f"memory       args {_mib(m['argument_bytes'])}, outputs {_mib(m['output_bytes'])}, "
      f"temp {_mib(m['temp_bytes'])}, process peak RSS {_mib(m['process_peak_rss_bytes'])}, "
      f"device peak {_mib(m['device_peak_bytes_in_use'])}",
      f"FLOPs        {r['flops_per_step'] / 1e9:.2f} GFLOP/step (XLA cost analysis), achieved "
      f"{r['achieved_flops_per_s'] / 1e9:.1f} GFLOP/s",
      f"peak         {r['peak_flops_per_s'] / 1e9:.1f} GFLOP/s measured ({peak['size']}^2 "
      f"{peak['dtype']} matmul x {peak['devices']} device(s))",
      f"MFU          {100 * r['mfu']:.1f}%",
  ]
  return '\n'.join(lines)


def main(argv):
  if len(argv) > 1:
    cli.fail('jssl.bench', f'unexpected arguments {argv[1:]}: every setting is a flag.')
  logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
  for noisy in ('absl', 'jax', 'orbax', 'jax._src'):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  from jssl.config import ConfigError  # pylint: disable=g-import-not-at-top
  from jssl.data.base import DatasetError  # pylint: disable=g-import-not-at-top
  from jssl.data.base import MissingDatasetError  # pylint: disable=g-import-not-at-top
  try:
    if _DATA_ONLY.value:
      try:
        workers = [int(w) for w in _DATA_WORKERS.value]
      except ValueError:
        cli.fail('jssl.bench', f'--data_workers={",".join(_DATA_WORKERS.value)} must be '
                 'comma-separated integers >= 0, e.g. --data_workers=0,1,2.')
      results = data_benchmark(_CONFIG.value, workers=workers, batches=_DATA_BATCHES.value,
                               warmup=_DATA_WARMUP.value, gpus=_GPUS.value,
                               images_per_s_per_gpu=_GPU_RATE.value)
    else:
      results = benchmark(_CONFIG.value, steps=_STEPS.value, warmup=_WARMUP.value,
                        num_batches=_BATCHES.value, augment=_AUGMENT.value,
                        diagnostics=_DIAGNOSTICS.value, online_probe=_ONLINE_PROBE.value,
                        peak_matmul_size=_PEAK_SIZE.value)
  except (ConfigError, DatasetError, MissingDatasetError) as error:
    cli.fail('jssl.bench', str(error))
  except ValueError as error:  # bad --data_workers values, from the iterator
    if not _DATA_ONLY.value:
      raise
    cli.fail('jssl.bench', str(error))
  results['config'] = config_flags.get_config_filename(flags.FLAGS['config'])
  results['overrides'] = config_flags.get_override_values(flags.FLAGS['config'])
  results['command'] = ' '.join(['python -m jssl.bench'] + sys.argv[1:])
  print(data_summary(results) if _DATA_ONLY.value else summary(results))
  if _OUT.value:
    with open(_OUT.value, 'w') as f:
      json.dump(results, f, indent=1, sort_keys=True)
      f.write('\n')
    print(f'wrote {_OUT.value}')


if __name__ == '__main__':
  app.run(main, flags_parser=functools.partial(cli.parse_flags, program='jssl.bench'))
