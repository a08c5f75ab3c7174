"""Jigsaw puzzles (Noroozi & Favaro 2016): recognise which permutation shuffled an image's tiles.

Each example's augmented view is cut into a `grid` x `grid` grid of cells; from every cell a
tile of `tile_fraction` of its side is cropped at a random offset (the paper's gap and jitter,
so that tiles cannot be matched by their edges); the tiles are shuffled by one permutation
drawn uniformly from a fixed set of `num_permutations`, and the network classifies which one.
Cropping, offsets and the permutation are drawn on the device from the step's key, one key
per example (`Method.prepare`).

The network is the paper's context-free network: the encoder runs on every tile alone
(weights shared), the tiles' pooled features are concatenated in the shuffled order, and a
head (Dense -> BN -> ReLU -> Dense, `config.model.projection_hidden_dim` wide) gives one logit
per permutation. The representation is the encoder applied to the whole image, as the paper
transfers its conv layers to whole images.

The permutation set (`permutation_set`) is chosen greedily by Hamming distance: start from a
random permutation, then repeatedly add the permutation whose smallest distance to those chosen
is largest (ties broken at random with `permutation_seed`). The paper's Algorithm 1 maximises
the *average* distance instead; the smallest distance is what makes every pair of classes tell
apart by several tiles, and it is what `min_hamming_distance` reports (logged at creation).
"""

from __future__ import annotations

import functools
import itertools
import logging

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jssl import augment
from jssl import models
from jssl.config import ConfigError
from jssl.methods import common
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def permutation_set(num_tiles: int, size: int, seed: int) -> np.ndarray:
  """`size` permutations of `num_tiles` tiles chosen greedily for a large smallest pairwise
  Hamming distance (see the module docstring).

  Returns:
    int32 [size, num_tiles]; row p maps a shuffled position i to the tile `row[i]`.
  """
  candidates = np.array(list(itertools.permutations(range(num_tiles))), dtype=np.int8)
  if size > len(candidates):
    raise ValueError(f'{size} permutations of {num_tiles} tiles were asked for; there are only '
                     f'{len(candidates)}.')
  rng = np.random.default_rng(seed)
  chosen = [int(rng.integers(len(candidates)))]
  nearest = np.sum(candidates != candidates[chosen[0]], axis=1)
  for _ in range(size - 1):
    best = np.flatnonzero(nearest == nearest.max())
    pick = int(rng.choice(best))
    chosen.append(pick)
    nearest = np.minimum(nearest, np.sum(candidates != candidates[pick], axis=1))
  return candidates[chosen].astype(np.int32)


def min_hamming_distance(permutations: np.ndarray) -> int:
  """The smallest number of positions at which two permutations of the set differ."""
  p = np.asarray(permutations)
  distances = np.sum(p[:, None, :] != p[None, :, :], axis=-1)
  np.fill_diagonal(distances, p.shape[1] + 1)
  return int(distances.min())


def cut_tiles(image: jax.Array, offsets: jax.Array, *, grid: int, tile: int) -> jax.Array:
  """The grid's tiles of one image, in raster order.

  Args:
    image: [S, S, C].
    offsets: int32 [grid * grid, 2], each tile's (row, col) offset inside its cell, in
      [0, S // grid - tile].
    grid: cells per side; cells are S // grid pixels (the last S % grid rows/cols unused).
    tile: side of each tile.

  Returns:
    [grid * grid, tile, tile, C].
  """
  cell = image.shape[0] // grid
  tiles = []
  for k in range(grid * grid):
    row, col = divmod(k, grid)
    start = (row * cell + offsets[k, 0], col * cell + offsets[k, 1], 0)
    tiles.append(jax.lax.dynamic_slice(image, start, (tile, tile, image.shape[-1])))
  return jnp.stack(tiles)


class ContextFreeNetwork(nn.Module):
  """Shared encoder per tile, concatenated features, permutation head."""
  encoder: nn.Module
  head: nn.Module

  def __call__(self, tiles, *, train: bool):
    """tiles [B, T, t, t, C] -> (per-tile features [B, T, F], logits [B, P])."""
    batch, num_tiles = tiles.shape[:2]
    h = self.encoder(tiles.reshape((batch * num_tiles,) + tiles.shape[2:]), train=train)
    h = h.reshape(batch, num_tiles, -1)
    return h, self.head(h.reshape(batch, -1), train=train)

  def encode(self, images):
    return self.encoder(images, train=False)


def build_model(config: ml_collections.ConfigDict) -> ContextFreeNetwork:
  """The shared tile encoder and the permutation head (Dense -> BN -> ReLU -> Dense,
  `projection_hidden_dim` wide, `num_permutations` outputs) of `config`."""
  m = config.model
  return ContextFreeNetwork(
      encoder=models.encoder_from_config(m),
      head=models.MLPHead(hidden_dims=(m.projection_hidden_dim,),
                          output_dim=config.jigsaw.num_permutations,
                          dtype=models.DTYPES[m.dtype]))


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds the jigsaw method from `config.model`, `config.augment` and `config.jigsaw`."""
  del info
  c = config.jigsaw
  if not isinstance(c.grid, int) or c.grid < 2:
    raise ConfigError(f'config.jigsaw.grid={c.grid!r} must be an integer >= 2 (3: the paper\'s '
                      '3x3 puzzle).')
  num_tiles = c.grid * c.grid
  if not 2 <= c.num_permutations <= min(10**4, int(np.prod(range(1, num_tiles + 1)))):
    raise ConfigError(f'config.jigsaw.num_permutations={c.num_permutations} must be between 2 and '
                      f'{min(10**4, int(np.prod(range(1, num_tiles + 1))))} for a {c.grid}x{c.grid} '
                      'grid (the paper: 100 to 1000 for 3x3).')
  if not 0.0 < c.tile_fraction <= 1.0:
    raise ConfigError(f'config.jigsaw.tile_fraction={c.tile_fraction} must be in (0, 1]: the '
                      'tile is that fraction of its cell (the rest is the random gap).')
  size = config.dataset.image_size
  cell = size // c.grid
  tile = max(1, int(round(cell * c.tile_fraction)))
  if cell < 4:
    raise ConfigError(f'config.dataset.image_size={size} gives {cell}-pixel cells for a '
                      f'{c.grid}x{c.grid} grid; use an image size of at least {4 * c.grid}.')
  views = common.views_for(config, 1, 'Jigsaw')
  permutations = permutation_set(num_tiles, c.num_permutations, c.permutation_seed)
  log.info('jigsaw: %d permutations of %d tiles, smallest Hamming distance %d',
           c.num_permutations, num_tiles, min_hamming_distance(permutations))
  table = jnp.asarray(permutations)
  model = build_model(config)

  def puzzle(key, image):
    offset_key, perm_key = jax.random.split(key)
    offsets = jax.random.randint(offset_key, (num_tiles, 2), 0, cell - tile + 1)
    label = jax.random.randint(perm_key, (), 0, c.num_permutations)
    tiles = cut_tiles(image, offsets, grid=c.grid, tile=tile)
    return tiles[table[label]], label

  def prepare(rng, batch, constants):
    """{'tiles': [B, T, t, t, C] shuffled tiles, 'label': int32 [B] permutation indices}."""
    del constants
    view_key, puzzle_key = jax.random.split(rng)
    (view,) = augment.augment_views(view_key, batch['image'], views)
    keys = jax.random.split(puzzle_key, view.shape[0])
    tiles, labels = jax.vmap(puzzle)(keys, view)
    return {'tiles': tiles, 'label': labels}

  return tile_classifier_method('jigsaw', config, model, views, prepare, num_tiles, tile,
                                'jigsaw_accuracy')


def tile_classifier_method(name: str, config: ml_collections.ConfigDict,
                           model: ContextFreeNetwork, views: tuple, prepare, num_tiles: int,
                           tile: int, metric: str) -> Method:
  """The `Method` of a context-free network classifying `num_tiles` tiles of side `tile` that
  `prepare` cuts ({'tiles': [B, T, t, t, C], 'label': int32 [B]}): the jigsaw's permutation,
  the relative position of two patches. The loss is the cross-entropy (`metric`: its accuracy);
  the representation is the encoder on the whole image; no online probe (no whole image is
  encoded in training), and the collapse diagnostics read the features of two tiles of each
  example."""

  def init(rng, images):
    dummy = jnp.zeros((images.shape[0], num_tiles, tile, tile, images.shape[-1]), images.dtype)
    params, batch_stats = common.init_variables(model, rng, dummy)
    return params, batch_stats, {}

  def loss(params, batch_stats, extra, inputs, step, rng):
    del step, rng
    (h, logits), batch_stats = common.apply_train(model, params, batch_stats, inputs['tiles'])
    value, accuracy = common.classification_loss(logits, inputs['label'])
    return value, LossOutput(batch_stats=batch_stats, extra=extra, metrics={metric: accuracy},
                             features=None, embeddings=(h[:, 0], h[:, 1]))

  def encode(params, batch_stats, images):
    return model.apply({'params': params, 'batch_stats': batch_stats}, images,
                       method=ContextFreeNetwork.encode)

  return Method(name=name, views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=encode, prepare=prepare, online_probe=False)
