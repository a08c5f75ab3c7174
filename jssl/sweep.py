"""Parameter sweeps over seeds: every point of a grid, resumable, aggregated into a table and a plot.

    python -m jssl.sweep --config=experiments/configs/simclr.py \
        --sweep='simclr.temperature=0.1,0.2,0.5' --seeds=3 --workdir=runs/sweep_temperature \
        [--sweep='batch_size=128,256'] [--vmap_seeds] [--results_dir=DIR] [--config.num_epochs=30]

Each `--sweep='field=v1,v2,...'` names a dotted config field and its values (Python literals,
else strings; commas inside brackets stay with their value: `model.widths=(8,16),(16,32)`);
several `--sweep` flags span their product. The field `variant` picks the config file's
variant (`simclr.py:<value>`), so a config file can define named points that set several
fields at once. `--config.<field>=<value>` overrides apply to every point.

Layout: `<workdir>/<point>/seed_<s>/` is an ordinary run directory (checkpoints, metrics.jsonl)
ending with `final.json`; a run that has one is never repeated, so running the same command
again after an interruption finishes only the missing runs (an interrupted run resumes from its
last checkpoint). With `--vmap_seeds` the seeds of a point train together in one compiled
program (`jax.vmap` over seeds, `jssl.train.seeds`) in `<workdir>/<point>/seeds_0-1-2/`.
After every point, `<workdir>/results.csv` (one row per run), `summary.md` (mean ± std over
seeds per point) and `plot.png` are rewritten (and copied to `--results_dir` when given).
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import itertools
import json
import math
import os
import re
import shutil
import sys
import time
from typing import Any, Sequence

DEFAULT_METRICS = ('knn_top1', 'linear_top1')
_FINAL = 'final.json'
_RESULTS = 'results.csv'
_SUMMARY = 'summary.md'
_PLOT = 'plot.png'


class SweepError(ValueError):
  """A sweep specification that cannot run."""


@dataclasses.dataclass(frozen=True)
class Point:
  """One point of the grid: `values` maps dotted config fields (or 'variant') to values."""
  values: tuple[tuple[str, Any], ...]

  @property
  def name(self) -> str:
    """Directory-safe name, e.g. 'simclr.temperature=0.1,batch_size=256'."""
    text = ','.join(f'{field}={_format(value)}' for field, value in self.values)
    return re.sub(r'[^A-Za-z0-9._=,+-]', '_', text)


def _format(value: Any) -> str:
  if isinstance(value, tuple):
    return '(' + '-'.join(_format(v) for v in value) + ')'
  return str(value)


def _split_values(text: str) -> list[str]:
  """Splits 'a,b,(1,2)' at commas outside brackets and quotes."""
  parts, depth, quote, current = [], 0, None, []
  for char in text:
    if quote:
      quote = None if char == quote else quote
    elif char in '\'"':
      quote = char
    elif char in '([{':
      depth += 1
    elif char in ')]}':
      depth -= 1
    elif char == ',' and depth == 0:
      parts.append(''.join(current))
      current = []
      continue
    current.append(char)
  parts.append(''.join(current))
  return [part.strip() for part in parts]


def _literal(text: str) -> Any:
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def parse_sweeps(specs: Sequence[str]) -> list[Point]:
  """['a=1,2', 'b=x,y'] -> the 4 points of the product, in order (a varies slowest).

  Raises:
    SweepError: a spec without '=', an empty value, or a field named twice.
  """
  axes = []
  for spec in specs:
    field, sep, values = spec.partition('=')
    field = field.strip()
    if not sep or not field or not values.strip():
      raise SweepError(f"--sweep must look like 'field=value1,value2,...', got {spec!r}")
    parsed = [_literal(v) for v in _split_values(values)]
    if any(v == '' for v in parsed):
      raise SweepError(f'--sweep {spec!r} has an empty value (two commas in a row?)')
    if field in [f for f, _ in axes]:
      raise SweepError(f'--sweep names {field!r} twice; give all its values in one flag')
    axes.append((field, parsed))
  if not axes:
    raise SweepError("give at least one --sweep='field=value1,value2,...'")
  return [Point(tuple(zip([f for f, _ in axes], combo)))
          for combo in itertools.product(*[values for _, values in axes])]


def _set_field(config, field: str, value: Any) -> None:
  *parents, leaf = field.split('.')
  node = config
  for name in parents:
    if name not in node:
      raise SweepError(f'--sweep field {field!r}: the config has no section {name!r}')
    node = node[name]
  if leaf not in node:
    raise SweepError(f'--sweep field {field!r} is not a field of this config (the fields are in '
                     'jssl/config.py base_config and the experiment config file)')
  current = node[leaf]
  if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  try:
    node[leaf] = value
  except TypeError as error:
    raise SweepError(f'--sweep field {field!r} cannot take {value!r}: {error}') from None


def point_config(config_path: str, point: Point, overrides: dict[str, Any], seed: int):
  """The config of one run: the file (with the point's variant), the point's fields, the
  command-line overrides, and `seed`."""
  from jssl.config import load_config  # pylint: disable=g-import-not-at-top
  values = dict(point.values)
  path, _, variant = config_path.partition(':')
  if 'variant' in values:
    variant = str(values.pop('variant'))
  config = load_config(f'{path}:{variant}' if variant else path)
  for field, value in overrides.items():
    _set_field(config, field, value)
  for field, value in values.items():
    _set_field(config, field, value)
  config.seed = seed
  return config


def _write_json(path: str, record: dict[str, Any]) -> None:
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(record, f, indent=1, sort_keys=True)
  os.replace(tmp, path)  # a kill leaves either no final.json or a complete one


def run_dirs(workdir: str, point: Point, seeds: Sequence[int]) -> list[str]:
  return [os.path.join(workdir, point.name, f'seed_{seed}') for seed in seeds]


def run_sweep(config_path: str, points: Sequence[Point], seeds: Sequence[int], workdir: str, *,
              overrides: dict[str, Any] | None = None, vmap_seeds: bool = False,
              metrics: Sequence[str] = DEFAULT_METRICS, results_dir: str | None = None,
              log=print) -> list[dict[str, Any]]:
  """Runs every (point, seed) that has no final.json yet; returns all rows (see load_results).

  Args:
    config_path: 'path/to/config.py[:variant]'.
    points: from `parse_sweeps`.
    seeds: the config seeds of each point's runs.
    workdir: the sweep's directory.
    overrides: dotted field -> value applied to every run before the point's values.
    vmap_seeds: train each point's seeds in one program (`jssl.train.seeds.train_seeds`).
    metrics: the metrics of the summary table and plot.
    results_dir: also write results.csv, summary.md and plot.png there.
    log: where progress lines go.
  """
  from jssl.train.loop import train_and_evaluate  # pylint: disable=g-import-not-at-top
  from jssl.train.seeds import train_seeds  # pylint: disable=g-import-not-at-top
  overrides = dict(overrides or {})
  os.makedirs(workdir, exist_ok=True)
  # Build every config first: a typo in the last point fails before hours of training.
  import jax  # pylint: disable=g-import-not-at-top
  from jssl.config import validate_config  # pylint: disable=g-import-not-at-top
  configs = {(point, seed): point_config(config_path, point, overrides, seed)
             for point in points for seed in seeds}
  for config in configs.values():
    validate_config(config, device_count=jax.device_count(), process_count=jax.process_count())
  _write_json(os.path.join(workdir, 'sweep.json'), {
      'config': config_path, 'points': [dict(p.values) for p in points], 'seeds': list(seeds),
      'overrides': overrides, 'vmap_seeds': vmap_seeds})
  for number, point in enumerate(points, 1):
    dirs = run_dirs(workdir, point, seeds)
    missing = [(seed, d) for seed, d in zip(seeds, dirs)
               if not os.path.exists(os.path.join(d, _FINAL))]
    if not missing:
      log(f'[{number}/{len(points)}] {point.name}: done earlier, skipped')
      continue
    log(f'[{number}/{len(points)}] {point.name}: seeds {[s for s, _ in missing]}')
    start = time.time()
    if vmap_seeds:
      missing_seeds = [s for s, _ in missing]
      # Named by its seeds: a resumed vmapped run must see the same stacked state.
      seeds_dir = 'seeds_' + '-'.join(str(s) for s in missing_seeds)
      results = train_seeds(configs[(point, missing_seeds[0])], missing_seeds,
                            os.path.join(workdir, point.name, seeds_dir))
      finished = list(zip(missing, results))
    else:
      finished = []
      for seed, run_dir in missing:
        finished.append(((seed, run_dir),
                         train_and_evaluate(configs[(point, seed)], run_dir, progress=False)))
    elapsed = time.time() - start
    for (seed, run_dir), result in finished:
      os.makedirs(run_dir, exist_ok=True)
      _write_json(os.path.join(run_dir, _FINAL), {
          'point': point.name, 'fields': dict(point.values), 'seed': seed,
          'metrics': {k: v for k, v in result.items() if isinstance(v, (int, float))},
          'wall_s_of_point': elapsed, 'vmap_seeds': vmap_seeds})
      log(f'    seed {seed}: ' + ', '.join(f'{m}={result[m]:.4f}' for m in metrics
                                           if m in result))
    write_outputs(workdir, points, seeds, metrics, results_dir)
  return write_outputs(workdir, points, seeds, metrics, results_dir)


def collect(workdir: str, points: Sequence[Point], seeds: Sequence[int]) -> list[dict[str, Any]]:
  """The finished runs of the grid, one row per (point, seed), in grid order."""
  rows = []
  for point in points:
    for seed, run_dir in zip(seeds, run_dirs(workdir, point, seeds)):
      path = os.path.join(run_dir, _FINAL)
      if not os.path.exists(path):
        continue
      with open(path) as f:
        record = json.load(f)
      rows.append({'point': point.name, **dict(point.values), 'seed': seed, **record['metrics']})
  return rows


def write_outputs(workdir: str, points: Sequence[Point], seeds: Sequence[int],
                  metrics: Sequence[str], results_dir: str | None = None) -> list[dict[str, Any]]:
  """Writes results.csv, summary.md and plot.png from the finished runs; returns the rows."""
  rows = collect(workdir, points, seeds)
  if not rows:
    return rows
  fields = [field for field, _ in points[0].values]
  metric_columns = sorted({k for row in rows for k in row} - {'point', 'seed', *fields})
  columns = ['point', *fields, 'seed', *metric_columns]
  with open(os.path.join(workdir, _RESULTS), 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=columns)
    writer.writeheader()
    for row in rows:
      writer.writerow({k: _csv_value(row.get(k, '')) for k in columns})
  metrics = [m for m in metrics if m in metric_columns]
  summary = summarize(rows, metrics)
  with open(os.path.join(workdir, _SUMMARY), 'w') as f:
    f.write(markdown_table(summary, fields, metrics, num_seeds=len(seeds)))
  plot_results(rows, os.path.join(workdir, _PLOT), metrics=metrics)
  if results_dir:
    os.makedirs(results_dir, exist_ok=True)
    for name in (_RESULTS, _SUMMARY, _PLOT, 'sweep.json'):
      shutil.copyfile(os.path.join(workdir, name), os.path.join(results_dir, name))
  return rows


def _csv_value(value: Any) -> Any:
  return repr(value) if isinstance(value, tuple) else value


def load_results(workdir: str) -> list[dict[str, Any]]:
  """Rows of `<workdir>/results.csv`: 'point', the swept fields, 'seed', the final metrics.

  Field values are parsed back to Python literals where they are literals; metrics are floats.
  """
  path = os.path.join(workdir, _RESULTS) if os.path.isdir(workdir) else workdir
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} does not exist: run `python -m jssl.sweep ... '
                            f'--workdir={workdir}` first (it writes results.csv after each point)')
  with open(path, newline='') as f:
    reader = csv.DictReader(f)
    rows = []
    for raw in reader:
      row = {}
      for key, value in raw.items():
        row[key] = value if key == 'point' else _literal(value)
      rows.append(row)
  return rows


def swept_fields(rows: Sequence[dict[str, Any]]) -> list[str]:
  """The swept field names of `rows` (the columns between 'point' and 'seed')."""
  if not rows:
    return []
  keys = list(rows[0])
  return keys[keys.index('point') + 1:keys.index('seed')]


def summarize(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
  """Mean and sample std over seeds of each metric, one dict per point (in order of first row).

  Returns dicts with 'point', the swept fields, 'num_seeds', '<metric>_mean', '<metric>_std'
  (std is 0 for a single seed).
  """
  fields = swept_fields(rows)
  groups: dict[str, list[dict[str, Any]]] = {}
  for row in rows:
    groups.setdefault(row['point'], []).append(row)
  summary = []
  for point, members in groups.items():
    entry = {'point': point, **{f: members[0][f] for f in fields}, 'num_seeds': len(members)}
    for metric in metrics:
      values = [float(m[metric]) for m in members if m.get(metric, '') != '']
      mean = sum(values) / len(values) if values else math.nan
      std = (math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
             if len(values) > 1 else 0.0)
      entry[f'{metric}_mean'], entry[f'{metric}_std'] = mean, std
    summary.append(entry)
  return summary


def markdown_table(summary: Sequence[dict[str, Any]], fields: Sequence[str],
                   metrics: Sequence[str], *, num_seeds: int | None = None) -> str:
  """A Markdown table: one row per point, 'mean ± std' per metric, and the seed count."""
  header = [*fields, 'seeds', *metrics]
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for entry in summary:
    seeds = str(entry['num_seeds'])
    if num_seeds is not None and entry['num_seeds'] < num_seeds:
      seeds += f' of {num_seeds}'
    cells = [_format(entry[f]) for f in fields] + [seeds] + [
        f"{entry[f'{m}_mean']:.3f} ± {entry[f'{m}_std']:.3f}" for m in metrics]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def _numeric(values: Sequence[Any]) -> bool:
  return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def plot_results(rows: Sequence[dict[str, Any]], path: str,
                 metrics: Sequence[str] = DEFAULT_METRICS) -> str:
  """PNG of mean ± std over seeds per point, one panel per metric.

  One numeric swept field: a line with error bars (log x-axis when the values span 10x or more
  and are positive). Two fields: a heat map of the mean (rows: first field) annotated with
  mean ± std. Otherwise: bars per point.
  """
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fields = swept_fields(rows)
  metrics = [m for m in metrics if any(m in row for row in rows)]
  if not metrics:
    raise ValueError(f'none of the metrics is in the rows (columns: {sorted(rows[0])})')
  summary = summarize(rows, metrics)
  fig = Figure(figsize=(5.0 * len(metrics), 3.8))
  axes = fig.subplots(1, len(metrics), squeeze=False)[0]
  for ax, metric in zip(axes, metrics):
    means = [entry[f'{metric}_mean'] for entry in summary]
    stds = [entry[f'{metric}_std'] for entry in summary]
    if len(fields) == 1 and _numeric([entry[fields[0]] for entry in summary]):
      xs = [entry[fields[0]] for entry in summary]
      ax.errorbar(xs, means, yerr=stds, marker='o', capsize=3)
      if min(xs) > 0 and max(xs) / min(xs) >= 10:
        ax.set_xscale('log')
      ax.set_xlabel(fields[0])
    elif len(fields) == 2:
      rows_axis = list(dict.fromkeys(entry[fields[0]] for entry in summary))
      cols_axis = list(dict.fromkeys(entry[fields[1]] for entry in summary))
      grid = [[math.nan] * len(cols_axis) for _ in rows_axis]
      middle = (min(means) + max(means)) / 2
      for entry, mean, std in zip(summary, means, stds):
        i, j = rows_axis.index(entry[fields[0]]), cols_axis.index(entry[fields[1]])
        grid[i][j] = mean
        ax.text(j, i, f'{mean:.3f}\n±{std:.3f}', ha='center', va='center', fontsize=7,
                color='black' if mean >= middle else 'white')  # legible on viridis
      image = ax.imshow(grid, cmap='viridis', aspect='auto')
      fig.colorbar(image, ax=ax)
      ax.set_xticks(range(len(cols_axis)), [_format(v) for v in cols_axis], rotation=45)
      ax.set_yticks(range(len(rows_axis)), [_format(v) for v in rows_axis])
      ax.set_xlabel(fields[1])
      ax.set_ylabel(fields[0])
    else:
      labels = [', '.join(_format(entry[f]) for f in fields) for entry in summary]
      ax.bar(range(len(labels)), means, yerr=stds, capsize=3)
      ax.set_xticks(range(len(labels)), labels, rotation=45, ha='right', fontsize=7)
      low = min(m - s for m, s in zip(means, stds))
      ax.set_ylim(max(0.0, low - 0.05), None)
    ax.set_title(f'{metric} (mean ± std over seeds)', fontsize=9)
    if len(fields) != 2:
      ax.set_ylabel(metric)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  return path


def main(argv: Sequence[str] | None = None) -> int:
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  argv = list(sys.argv if argv is None else argv)
  flag_values = flags.FlagValues()
  config_flag = config_flags.DEFINE_config_file(
      'config', None, 'Experiment config file, e.g. experiments/configs/simclr.py[:variant].',
      flag_values=flag_values, sys_argv=argv)
  sweeps = flags.DEFINE_multi_string('sweep', None, "'field=v1,v2,...' (repeatable: product)",
                                     flag_values=flag_values)
  num_seeds = flags.DEFINE_integer('seeds', 3, 'seeds per point (config.seed + 0 .. seeds-1)',
                                   flag_values=flag_values)
  workdir = flags.DEFINE_string('workdir', None, 'the sweep directory', flag_values=flag_values)
  vmap = flags.DEFINE_bool('vmap_seeds', False, 'train the seeds of a point in one program',
                           flag_values=flag_values)
  metrics = flags.DEFINE_list('metrics', list(DEFAULT_METRICS), 'metrics of the table and plot',
                              flag_values=flag_values)
  results_dir = flags.DEFINE_string('results_dir', None, 'also write the outputs here',
                                    flag_values=flag_values)
  try:
    flag_values(argv)
    if not config_flag.value or not workdir.value or not sweeps.value:
      raise flags.Error('--config, --workdir and --sweep are required')
    if num_seeds.value < 1:
      raise flags.Error(f'--seeds={num_seeds.value} must be at least 1')
    points = parse_sweeps(sweeps.value)
  except (flags.Error, SweepError, AttributeError, KeyError, ValueError) as error:
    print(f'jssl.sweep: error: {str(error).strip()}', file=sys.stderr)
    return 2

  import logging  # pylint: disable=g-import-not-at-top
  logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
  for noisy in ('absl', 'jax', 'orbax', 'jax._src', 'jssl.train.loop'):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  import jax  # pylint: disable=g-import-not-at-top
  # Seeds of a point compile the same programs (the seed is data, not a constant): XLA's
  # persistent cache turns every compilation after the first into a load from disk.
  jax.config.update('jax_compilation_cache_dir', os.path.join(os.path.abspath(workdir.value),
                                                              '.xla_cache'))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)
  from jssl.config import ConfigError  # pylint: disable=g-import-not-at-top
  base = config_flag.value
  config_path = config_flags.get_config_filename(flag_values['config'])
  seeds = [base.seed + i for i in range(num_seeds.value)]
  try:
    run_sweep(config_path, points, seeds, workdir.value,
              overrides=config_flags.get_override_values(flag_values['config']), vmap_seeds=vmap.value,
              metrics=metrics.value, results_dir=results_dir.value,
              log=lambda line: print(line, flush=True))
  except (SweepError, ConfigError) as error:
    print(f'jssl.sweep: error: {error}', file=sys.stderr)
    return 2
  print(f'results: {os.path.join(workdir.value, _RESULTS)}, {_SUMMARY}, {_PLOT}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
