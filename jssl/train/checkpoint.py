"""Orbax checkpoints of the train state and the data iterator's position.

Layout: `<workdir>/checkpoints/<step>/{state,data}`. The newest few are kept. On start the
newest readable checkpoint is restored; one that cannot be read is moved (never deleted) to
`<workdir>/corrupt_checkpoints/<step>` with a warning, and the previous one is tried.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import sys
from typing import Any

import jax
import orbax.checkpoint as ocp

from jssl.config import ConfigError

log = logging.getLogger(__name__)


def _silence_abandoned_reads() -> None:
  """Keeps orbax's abandoned read coroutines from printing tracebacks after a failed restore.

  When a restore fails mid-read, orbax's pending per-array coroutines are left behind; when
  they are garbage-collected, at some later point, they raise ("RuntimeError: Event loop is
  closed", or the read's own error) into `sys.unraisablehook`, which prints a screen of
  tracebacks after our one-line warning; tensorstore's threads may also report "Event loop is
  closed" while the failing read unwinds. Before a restore, a hook that drops exactly these
  (and passes everything else on) is installed, once.
  """
  if getattr(sys.unraisablehook, 'jssl_drops_abandoned_reads', False):
    return
  previous = sys.unraisablehook

  def hook(unraisable):
    code = getattr(unraisable.object, 'cr_code', None)  # set for coroutines only
    from_orbax = code is not None and f'{os.sep}orbax{os.sep}' in code.co_filename
    closed_loop = (isinstance(unraisable.exc_value, RuntimeError) and
                   str(unraisable.exc_value) == 'Event loop is closed')
    if not (from_orbax or closed_loop):
      previous(unraisable)

  hook.jssl_drops_abandoned_reads = True
  sys.unraisablehook = hook


class UnreadableCheckpointError(ConfigError):
  """A checkpoint failed to restore where setting it aside could lose a readable one."""


class Checkpointer:
  """Saves and restores (train state, iterator state) pairs under `workdir`."""

  def __init__(self, workdir: str, *, max_to_keep: int = 3):
    self._workdir = os.path.abspath(workdir)
    self._directory = os.path.join(self._workdir, 'checkpoints')
    self._max_to_keep = max_to_keep
    self._manager = self._make_manager()

  def _make_manager(self) -> ocp.CheckpointManager:
    # Synchronous saves: when `save` returns the checkpoint is complete on disk, so a kill
    # right after loses nothing; a kill during a save leaves only a temporary directory,
    # which orbax ignores.
    options = ocp.CheckpointManagerOptions(
        max_to_keep=self._max_to_keep, create=True, enable_async_checkpointing=False)
    return ocp.CheckpointManager(self._directory, options=options,
                                 item_names=('state', 'data'))

  @property
  def directory(self) -> str:
    return self._directory

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any, data_state: dict[str, Any]) -> None:
    if step in self._manager.all_steps():
      return  # already saved (e.g. the final save right after a periodic one)
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)), force=True)
    self._manager.wait_until_finished()

  def restore_latest(self, abstract_state: Any, *,
                     quarantine: bool = True) -> tuple[Any, dict[str, Any], int] | None:
    """Restores the newest readable checkpoint.

    Args:
      abstract_state: a pytree of `jax.ShapeDtypeStruct` (with shardings) like the state.
        The caller has checked that the workdir's run has this state's shapes
        (`jssl.train.workdir.check_state`), so a checkpoint that fails to restore is unreadable.
      quarantine: move an unreadable checkpoint aside and try the previous one (the default);
        False raises `UnreadableCheckpointError` instead and moves nothing (for a workdir whose
        run was not recorded, where a failure may mean another config's readable checkpoint).

    Returns:
      (state, data_state, step), or None when there is no readable checkpoint.
    """
    _silence_abandoned_reads()  # before reading: tensorstore threads may report during it
    for step in reversed(self.all_steps()):
      try:
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
        _check_structure(restored.state, abstract_state)
        return restored.state, dict(restored.data), step
      except Exception as error:  # pylint: disable=broad-except
        reason = (f'{type(error).__name__}: '
                  f'{str(error).splitlines()[0][:300] if str(error) else ""}')
      gc.collect()  # finalise the failed read's coroutines now, while the hook is in place
      if not quarantine:
        raise UnreadableCheckpointError(
            f'the checkpoint at step {step} in {self._directory} could not be restored with '
            f'this config ({reason}), and the workdir has no record of the config that wrote '
            'it (it predates jssl keeping one). Nothing was moved. Resume with the config '
            'that wrote it, or start a new --workdir.') from None
      # Anything unreadable (truncated files, bad metadata) is set aside and the previous
      # checkpoint is tried: a resumed run loses at most one interval.
      moved_to = self._quarantine(step)
      log.warning('checkpoint at step %d in %s could not be restored (%s); moved it to %s '
                  'and falling back to the previous checkpoint.', step, self._directory,
                  reason, moved_to)
    return None

  def _quarantine(self, step: int) -> str:
    source = os.path.join(self._directory, str(step))
    target_dir = os.path.join(self._workdir, 'corrupt_checkpoints')
    os.makedirs(target_dir, exist_ok=True)
    target = os.path.join(target_dir, str(step))
    suffix = 0
    while os.path.exists(target):
      suffix += 1
      target = os.path.join(target_dir, f'{step}.{suffix}')
    if jax.process_index() == 0 and os.path.exists(source):
      shutil.move(source, target)
    self._manager.close()
    self._manager = self._make_manager()
    return target

  def close(self) -> None:
    self._manager.close()


def _check_structure(state: Any, abstract_state: Any) -> None:
  for got, want in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(abstract_state)):
    if got.shape != want.shape or got.dtype != want.dtype:
      raise ValueError(f'leaf has shape {got.shape} {got.dtype}, expected {want.shape} '
                       f'{want.dtype}')
  if jax.tree_util.tree_structure(state) != jax.tree_util.tree_structure(abstract_state):
    raise ValueError('checkpoint tree structure differs from the model in this config')
