"""A trained encoder from a work directory, callable on new inputs:

    encoder = jssl.load_encoder('runs/simclr_digits')
    features = encoder(images)          # uint8 [N, H, W, C] -> float32 [N, F]

The run's resolved config comes from the workdir's record (`run_config.json`, written with
every checkpoint), the weights from its newest readable checkpoint; the features are the
method's frozen representation, the one its kNN / linear probes score (for images the
evaluation view: resize / centre crop to `config.dataset.image_size`, then the encoder in
inference mode).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import jax
import ml_collections
import numpy as np

from jssl.data.base import ArraySource
from jssl.eval import evaluate as evaluation
from jssl.train import workdir as workdir_lib
from jssl.train.checkpoint import Checkpointer


def config_from_record(flat: dict[str, Any]) -> ml_collections.ConfigDict:
  """Rebuilds a ConfigDict from a record's flattened config (JSON lists become tuples)."""
  nested: dict[str, Any] = {}
  for field, value in flat.items():
    node = nested
    *parents, leaf = field.split('.')
    for parent in parents:
      node = node.setdefault(parent, {})
    node[leaf] = tuple(value) if isinstance(value, list) else value
  return ml_collections.ConfigDict(nested)


class Encoder:
  """The frozen representation of a trained run.

  Attributes:
    config: the run's config.
    features_dim: F.
    step: the training step of the weights.
    method: the run's `jssl.methods.Method`.
  """

  def __init__(self, run, state, step: int):
    self._run = run
    self._state = state
    self.config = run.config
    self.method = run.method
    self.features_dim = run.method.features_dim
    self.step = step

  @property
  def state(self):
    """The restored `TrainState` (params, extra, ...), for a later stage built on this run."""
    return self._state

  def __call__(self, inputs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
    """Features of a batch of raw inputs, in chunks of `config.eval.batch_size`.

    Args:
      inputs: uint8 images [N, H, W, C] at the dataset's stored size, or a dict of a
        source's fields ({'tokens': int32 [N, L]} for text, {'node': int32 [N]} for the
        graph the run trained on).

    Returns:
      float32 [N, F].
    """
    fields = {'image': inputs} if not isinstance(inputs, dict) else dict(inputs)
    fields = {key: np.asarray(value) for key, value in fields.items() if key != 'label'}
    count = len(next(iter(fields.values())))
    if 'image' in fields and fields['image'].ndim == 3:
      fields['image'] = fields['image'][..., None]  # [N, H, W] grey -> [N, H, W, 1]
    source = _FieldSource(fields, count)
    features, _, _ = evaluation.extract(self._run.feature_fn, self._state, source,
                                        batch_size=self.config.eval.batch_size,
                                        mesh=self._run.mesh, constants=self._run.constants)
    return features


class _FieldSource:
  """A source over arrays given by the caller (labels are not needed for features)."""

  def __init__(self, fields: dict[str, np.ndarray], count: int):
    self._fields, self._count = fields, count

  def __len__(self) -> int:
    return self._count

  def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    batch = {key: value[indices] for key, value in self._fields.items()}
    batch['label'] = np.zeros(len(indices), np.int32)
    return batch


def load_encoder(workdir: str) -> Encoder:
  """The trained encoder of the run in `workdir` (its newest checkpoint).

  Raises:
    FileNotFoundError: `workdir` holds no recorded run or no checkpoint.
    jssl.config.ConfigError: the record does not describe a run this jssl can build.
  """
  from jssl.train.loop import Run  # pylint: disable=g-import-not-at-top
  record = workdir_lib.read_record(workdir)
  if record is None:
    raise FileNotFoundError(f'{workdir} holds no trained run: {workdir_lib.record_path(workdir)} '
                            'is missing (it is written with the first checkpoint).')
  config = config_from_record(record['config'])
  with tempfile.TemporaryDirectory() as scratch:  # Run writes nothing; it wants a directory
    run = Run(config, scratch, abstract=True)
  abstract = run.state
  checkpointer = Checkpointer(workdir, max_to_keep=config.keep_checkpoints)
  try:
    restored = checkpointer.restore_latest(abstract, quarantine=False)
  finally:
    checkpointer.close()
  if restored is None:
    raise FileNotFoundError(f'{os.path.join(workdir, "checkpoints")} holds no checkpoint.')
  state, _, step = restored
  run.iterator.close()
  return Encoder(run, state, step)
