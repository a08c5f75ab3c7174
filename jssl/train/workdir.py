"""A work directory remembers the run it holds: `<workdir>/run_config.json`.

Written (atomically, by process 0) before the first checkpoint and refreshed with every later
one: the resolved config and the shape and dtype of every leaf of the train state. A run
started again in the same workdir is compared with it before anything in the workdir is read
or written; a config that would build a different state or a different data stream is refused
with `WorkdirMismatchError`, which names every differing field (old -> new). Only the fields in
`RESUMABLE_FIELDS` may change on resume.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections

from jssl.config import ConfigError
from jssl.config import base_config

RECORD_NAME = 'run_config.json'

# Fields that may differ between a run and its resumption: how long to train (extending
# `num_steps` or `num_epochs` continues the run; the learning-rate and EMA schedules then follow
# the new length from the resumed step on), how often to log, checkpoint and evaluate, what
# evaluation does (it reads the state, never changes it), where the data files are and how many
# processes read them (the batches are the same for any number). Every
# other field shapes the state or the stream of batches (model, method section, dataset, batch
# size, seed, optimizer, augmentation, ...). A name covers its sub-fields ('eval' is eval.*).
RESUMABLE_FIELDS = ('num_steps', 'num_epochs', 'log_every', 'checkpoint_every',
                    'keep_checkpoints', 'eval', 'dataset.data_dir', 'dataset.workers')


class WorkdirMismatchError(ConfigError):
  """The workdir holds a run whose config or state differs from the one asked for."""


def record_path(workdir: str) -> str:
  return os.path.join(workdir, RECORD_NAME)


def flat_config(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """{'model.projection_dim': 64, ...}: every leaf field, JSON-normalised (tuples as lists)."""
  flat: dict[str, Any] = {}

  def visit(prefix: str, node: Any) -> None:
    if isinstance(node, dict):
      for key in sorted(node):
        visit(f'{prefix}.{key}' if prefix else key, node[key])
    else:
      flat[prefix] = node

  visit('', config.to_dict())
  return json.loads(json.dumps(flat, default=repr))


def state_shapes(state: Any) -> dict[str, list]:
  """{'.params['encoder']...': [[shape...], 'float32'], ...} of a state or its abstract form."""
  return {jax.tree_util.keystr(path): [list(leaf.shape), str(leaf.dtype)]
          for path, leaf in jax.tree_util.tree_leaves_with_path(state)}


def _resumable(field: str) -> bool:
  return any(field == name or field.startswith(name + '.') for name in RESUMABLE_FIELDS)


def read_record(workdir: str) -> dict[str, Any] | None:
  path = record_path(workdir)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      record = json.load(f)
    if not isinstance(record.get('config'), dict) or not isinstance(record.get('state'), dict):
      raise ValueError('it lacks the "config" or "state" entry')
  except (OSError, ValueError) as error:
    raise WorkdirMismatchError(
        f'{path} cannot be read ({error}); it records the config of the run in this workdir. '
        'Restore the file from a backup, or start a new run with a new --workdir.') from None
  return record


_ABSENT = object()


def _show(value: Any) -> str:
  return 'absent' if value is _ABSENT else json.dumps(value)


def _refuse(workdir: str, what: str, lines: list[str]) -> None:
  shown = lines[:12] + ([f'  ... and {len(lines) - 12} more'] if len(lines) > 12 else [])
  raise WorkdirMismatchError(
      f'the workdir {workdir} holds a run with a different {what}:\n' + '\n'.join(shown) +
      f'\nNothing was changed. Either resume it with its original config (saved in '
      f'{record_path(workdir)}), or start this config in a new --workdir. Fields that may '
      f'change on resume: {", ".join(RESUMABLE_FIELDS)}.')


def check_config(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any] | None:
  """Refuses (WorkdirMismatchError) a config that differs from the workdir's recorded run.

  Returns the record (None for a workdir that holds no run yet).
  """
  record = read_record(workdir)
  if record is None:
    return None
  old, new = record['config'], flat_config(config)
  defaults = flat_config(base_config())
  lines = []
  for field in sorted(set(old) | set(new)):
    before, after = old.get(field, _ABSENT), new.get(field, _ABSENT)
    # A field jssl added after the record was written, at the default that keeps the old
    # behaviour, is not a change of this run.
    added_later = before is _ABSENT and field in defaults and after == defaults[field]
    if before != after and not _resumable(field) and not added_later:
      lines.append(f'  {field}: {_show(before)} -> {_show(after)}')
  if lines:
    _refuse(workdir, 'config', lines)
  return record


def check_state(record: dict[str, Any] | None, abstract_state: Any, workdir: str) -> None:
  """Refuses a state whose leaves' shapes or dtypes differ from the recorded run's (a config
  check that passed with a changed program, e.g. a different jssl version)."""
  if record is None:
    return
  old, new = record['state'], state_shapes(abstract_state)
  lines = [f'  state{path}: {_show(old.get(path, _ABSENT))} -> {_show(new.get(path, _ABSENT))}'
           for path in sorted(set(old) | set(new)) if old.get(path) != new.get(path)]
  if lines:
    _refuse(workdir, 'train state (same config, different program)', lines)


def write_record(config: ml_collections.ConfigDict, workdir: str, state: Any) -> None:
  """Writes (or refreshes) the record atomically; process 0 only."""
  if jax.process_index() != 0:
    return
  record = {'config': flat_config(config), 'state': state_shapes(state)}
  path = record_path(workdir)
  if os.path.exists(path):
    try:
      with open(path) as f:
        if json.load(f) == record:
          return
    except (OSError, ValueError):
      pass
  temporary = path + '.tmp'
  with open(temporary, 'w') as f:
    json.dump(record, f, indent=1, sort_keys=True)
    f.write('\n')
  os.replace(temporary, path)
