"""What every dataset in jssl looks like to the rest of the library.

A *source* is a random-access collection of labelled images: ``len(source)`` examples and
``source.get_batch(indices)`` returning host NumPy arrays. The deterministic iterator
(`jssl.data.iterator`) only ever asks a source for indices, so in-memory arrays (digits,
Fashion-MNIST) and TFDS ArrayRecord files (cifar10, imagenet2012, ...) behave identically,
and resuming a run only needs the iterator's position.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
from typing import Iterator, Protocol

import numpy as np


class MissingDatasetError(FileNotFoundError):
  """A dataset could not be found; the message says which, where we looked and how to get it."""


class DatasetError(ValueError):
  """A dataset is present but cannot be used (a truncated or malformed file, wrong shapes);
  the message names the file and what to do."""


@contextlib.contextmanager
def build_lock(path: str) -> Iterator[None]:
  """Holds an exclusive lock on `path`.lock while the caller builds the cache file `path`.

  Processes that need the same cache at once (xdist workers, the processes of a multi-host
  run on one machine) then build it once: the others wait and, finding the file when the lock
  is theirs, read it. Callers check for the file again inside the lock. Where the directory
  cannot be written, the build goes ahead unlocked (its own write reports the problem).
  """
  try:
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    handle = open(path + '.lock', 'a')  # pylint: disable=consider-using-with
  except OSError:
    yield
    return
  with handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)


class Source(Protocol):
  """Random access to labelled images."""

  image_shape: tuple[int, int, int]  # (H, W, C) of every image get_batch returns.

  def __len__(self) -> int:
    ...

  def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Returns {'image': uint8 [B, H, W, C], 'label': int32 [B]} for integer `indices` [B]."""
    ...


@dataclasses.dataclass(frozen=True)
class ArraySource:
  """A source held in host memory."""

  images: np.ndarray  # uint8 [N, H, W, C]
  labels: np.ndarray  # int32 [N]

  def __post_init__(self):
    if self.images.ndim != 4 or self.images.dtype != np.uint8:
      raise ValueError(
          f'images must be uint8 [N, H, W, C], got {self.images.dtype} {self.images.shape}')
    if self.labels.shape != self.images.shape[:1]:
      raise ValueError(
          f'labels must have shape [{self.images.shape[0]}], got {self.labels.shape}')

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.images.shape[1:])

  def __len__(self) -> int:
    return self.images.shape[0]

  def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    return {'image': self.images[indices], 'label': self.labels[indices].astype(np.int32)}


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Train / validation / test sources of one dataset.

  `train` is what pre-training and the probes fit on, `validation` is where probe
  hyperparameters are chosen, `test` is where results are reported.
  """

  name: str
  train: Source
  validation: Source
  test: Source
  num_classes: int
  modality: str = 'image'  # 'image', 'text' or 'graph': what a source's batches hold

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return self.train.image_shape

  def device_constants(self) -> dict[str, np.ndarray]:
    """Arrays every training step reads whole, replicated on every device (a graph's
    features and edges); {} for datasets whose batches hold everything."""
    return {}
