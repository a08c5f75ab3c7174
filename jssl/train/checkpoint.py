"""Orbax checkpoints of the train state and the data iterator's position.

Layout: `<workdir>/checkpoints/<step>/{state,data}`. The newest few are kept. On start the
newest readable checkpoint is restored; one that cannot be read is moved (never deleted) to
`<workdir>/corrupt_checkpoints/<step>` with a warning, and the previous one is tried.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


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

  def restore_latest(self, abstract_state: Any) -> tuple[Any, dict[str, Any], int] | None:
    """Restores the newest readable checkpoint.

    Args:
      abstract_state: a pytree of `jax.ShapeDtypeStruct` (with shardings) like the state.

    Returns:
      (state, data_state, step), or None when there is no readable checkpoint.
    """
    for step in reversed(self.all_steps()):
      try:
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
        _check_structure(restored.state, abstract_state)
        return restored.state, dict(restored.data), step
      except Exception as error:  # pylint: disable=broad-except
        # Anything unreadable (truncated files, bad metadata, wrong shapes) is set aside and
        # the previous checkpoint is tried: a resumed run loses at most one interval.
        quarantine = self._quarantine(step)
        log.warning('checkpoint at step %d in %s could not be restored (%s: %s); moved it to %s '
                    'and falling back to the previous checkpoint.', step, self._directory,
                    type(error).__name__, str(error).splitlines()[0][:300] if str(error) else '',
                    quarantine)
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
