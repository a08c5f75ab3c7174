"""Relative patch position (Doersch, Gupta & Efros 2015): where is the second patch relative to
the first?

Each example's augmented view is cut into a 3x3 grid of cells; from the centre cell and one of
its 8 neighbours (drawn uniformly) a tile of `tile_fraction` of the cell's side is cropped at a
random offset in its cell (the paper's gap and jitter: patches must not be matched by edges or
continuing lines). The encoder runs on both tiles (shared weights), their pooled features are
concatenated, centre first, and a head (Dense -> BN -> ReLU -> Dense,
`config.model.projection_hidden_dim` wide) classifies the neighbour's position into 8 classes:

    0 1 2
    3 . 4      (label of the neighbour, raster order around the centre)
    5 6 7

Tiles, offsets and labels are drawn on the device from the step's key, one key per example
(`Method.prepare`). The representation is the encoder applied to the whole image, as the paper
transfers its conv layers. Not reproduced: the paper's colour projection and dropping against
chromatic aberration (its images are photographs; digits and Fashion-MNIST are grey).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from jssl import augment
from jssl import models
from jssl.config import ConfigError
from jssl.methods import common
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo
from jssl.methods.jigsaw import ContextFreeNetwork, cut_tiles, tile_classifier_method

# Cell index (raster order of the 3x3 grid) of each of the 8 labels; the centre is cell 4.
NEIGHBOUR_CELLS = (0, 1, 2, 3, 5, 6, 7, 8)
CENTRE_CELL = 4


def build_model(config: ml_collections.ConfigDict) -> ContextFreeNetwork:
  """The shared patch encoder and the 8-way position head of `config`."""
  m = config.model
  return ContextFreeNetwork(
      encoder=models.encoder_from_config(m),
      head=models.MLPHead(hidden_dims=(m.projection_hidden_dim,), output_dim=8,
                          dtype=models.DTYPES[m.dtype]))


def patch_pair(key: jax.Array, image: jax.Array, *, tile: int) -> tuple[jax.Array, jax.Array]:
  """The centre tile and a random neighbour of one image, with the neighbour's label.

  Args:
    key: the example's key.
    image: [S, S, C]; cells are S // 3 pixels.
    tile: the tiles' side (<= S // 3).

  Returns:
    (tiles [2, tile, tile, C]: centre then neighbour, label int32 in [0, 8)).
  """
  offset_key, label_key = jax.random.split(key)
  cell = image.shape[0] // 3
  offsets = jax.random.randint(offset_key, (9, 2), 0, cell - tile + 1)
  label = jax.random.randint(label_key, (), 0, 8)
  tiles = cut_tiles(image, offsets, grid=3, tile=tile)
  neighbour = jnp.asarray(NEIGHBOUR_CELLS)[label]
  return jnp.stack([tiles[CENTRE_CELL], tiles[neighbour]]), label


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds the relative-position method from `config.model`, `config.augment` and
  `config.relative_position`."""
  del info
  c = config.relative_position
  if not 0.0 < c.tile_fraction <= 1.0:
    raise ConfigError(f'config.relative_position.tile_fraction={c.tile_fraction} must be in '
                      '(0, 1]: the tile is that fraction of its cell (the rest is the gap).')
  size = config.dataset.image_size
  cell = size // 3
  if cell < 4:
    raise ConfigError(f'config.dataset.image_size={size} gives {cell}-pixel cells for the 3x3 '
                      'grid; use an image size of at least 12.')
  tile = max(1, int(round(cell * c.tile_fraction)))
  views = common.views_for(config, 1, 'Relative position')
  model = build_model(config)

  def prepare(rng, batch, constants):
    """{'tiles': [B, 2, t, t, C] centre and neighbour, 'label': int32 [B] in [0, 8)}."""
    del constants
    view_key, pair_key = jax.random.split(rng)
    (view,) = augment.augment_views(view_key, batch['image'], views)
    keys = jax.random.split(pair_key, view.shape[0])
    tiles, labels = jax.vmap(lambda k, x: patch_pair(k, x, tile=tile))(keys, view)
    return {'tiles': tiles, 'label': labels}

  return tile_classifier_method('relative_position', config, model, views, prepare, 2, tile,
                                'position_accuracy')
