"""PIRL (Misra & van der Maaten 2019): pretext-invariant representations, with jigsaw.

"Self-Supervised Learning of Pretext-Invariant Representations": instead of predicting the
jigsaw permutation, the representation of an image I and that of its jigsaw transform I^t are
made similar, and both dissimilar from other images.

- f(v_I): view 0 through the encoder and a head f (`config.model` projector; linear to 128-d
  with `projection_layers = 1`, as in the paper).
- g(v_It): view 1 is cut into a `grid` x `grid` grid of cells; in every cell a square tile of
  side round(tile_fraction * cell) is cropped at a random offset (`jigsaw`); the tiles are
  shuffled by a random permutation per example; all B * grid² tiles go through the same
  encoder in one batched call (the encoders global-average-pool, so small tiles work); each
  tile representation is linearly projected to 128-d (shared across tiles), the projections are
  concatenated in the shuffled order, and a second linear layer gives the 128-d g(v_It).
- A memory bank m of unit f(v_I), one row per training image, updated with momentum after each
  step (paper: 0.5) from the batch's f(v_I).
- loss = lambda * L(m_I, g(v_It)) + (1 - lambda) * L(m_I, f(v_I)), lambda = 0.5, where each
  term uses its query x against the positive m_I (the bank row of I, no gradient) and K
  negatives, bank rows of uniformly drawn images; temperature 0.07. `objective`:
  - 'nce' (the paper's): L_NCE(m_I, x) = -log h(x, m_I) - sum_{I'} log(1 - h(x, m_I')),
    h(x, y) = P(y) / (P(y) + K/N), P(y) = exp(s(x, y)/tau) / Z, s the cosine similarity
    (`jssl.losses.nce`). The paper prints h without Z (i.e. Z = 1, `log_partition = 0.0`),
    but the authors' implementation (VISSL's NCE loss, `norm_constant: -1` in its PIRL
    config) estimates Z once from the first batch, Z = N * mean exp(s/tau), as NPID does; that
    is the default here (`log_partition = None`; the mean runs over the similarities of both
    terms). With Z = 1 and random bank rows (s ~ 0) every negative has h ~ 1 / (1 + K/N), so
    the repulsion starts saturated; the option is kept for fidelity to the printed formula.
  - 'softmax': `jssl.losses.info_nce` over the positive and the same K negatives (VISSL's
    'cross_entropy' loss type). The digits config uses it: NCE's unnormalised repulsion
    collapsed InstDisc on those 1,259 images (see `jssl.methods.instdisc`); PIRL's bank and
    loss are the same.

Choices where the paper leaves room:
- Concatenation order: the paper concatenates the patch representations in a random order;
  here that order is the shuffled one from `jigsaw` (slot j holds the tile of cell
  permutation[j]), so g is not told where a tile came from.
- Head g: as in the authors' code (VISSL's PIRL config), a linear projection of each patch
  representation to 128-d, the nine concatenated, and a linear projection of the concatenation
  to 128-d (`JigsawHead`): two linear layers without a non-linearity between them.
- Tiles: the paper cuts 64x64 tiles from the 85x85 cells of a 255x255 crop (64/85 ~ 0.75 =
  `tile_fraction`); the jigsaw source is its own random crop of the image (view 1 here).
  Cells are image_size // grid pixels, aligned to the top-left corner, so for 16x16 digit
  views (5-px cells, 4-px tiles) the last row and column of pixels are never used. Tiles get
  no augmentation of their own (the authors' code jitters each patch): they come from a view
  that the preset has already augmented.
- The same K sampled negatives serve both terms; they are drawn uniformly with replacement from
  the whole bank, so an image can draw its own row (probability 1/N per draw). Digits has only
  1,259 training images, so its config draws K = 1024 (the paper: 32,000 of 1.28 M).
- The bank is updated with f(v_I) of the full view, never with g(v_It) (as in the authors'
  code: `update_mem_with_emb_index` points at the image head).
- The positive m_I is the bank row before this step's update.
- BatchNorm: the full views and the tiles are separate encoder calls, each normalised over its
  own global batch.

State (`extra`): 'bank' [num_examples, projection_dim], unit vectors (random at step 0); with
objective 'nce' and an estimated Z also 'log_partition' (float32 log Z, 0 until set) and
'partition_set' (bool, False until the first step has estimated it).

Logged: 'loss_jigsaw' and 'loss_image' (the two terms), 'positive_similarity_jigsaw' and
'positive_similarity_image' (mean cosine of g(v_It), resp. f(v_I), with m_I) and, when it is
estimated, 'log_partition'.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jssl import losses
from jssl import models
from jssl.config import ConfigError
from jssl.methods import common
from jssl.methods import instdisc
from jssl.methods import memory
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo


def tile_size_for(config: ml_collections.ConfigDict) -> int:
  """Tile side: round(tile_fraction * cell), cell = image_size // grid; at least 1 pixel."""
  c = config.pirl
  cell = config.dataset.image_size // c.grid
  return max(1, round(c.tile_fraction * cell))


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks `config.pirl` against the view size; raises ConfigError naming the field."""
  c = config.pirl
  if c.grid < 2 or c.grid > config.dataset.image_size:
    raise ConfigError(f'config.pirl.grid={c.grid} must be between 2 and the view size '
                      f'config.dataset.image_size={config.dataset.image_size} (paper: 3).')
  if not 0.0 < c.tile_fraction <= 1.0:
    raise ConfigError(f'config.pirl.tile_fraction={c.tile_fraction} must be in (0, 1]: the '
                      "tile's side as a fraction of its cell's (paper: 64/85 = 0.75).")
  if c.num_negatives <= 0:
    raise ConfigError(f'config.pirl.num_negatives={c.num_negatives} must be positive: each '
                      'query needs negatives from the memory bank (paper: 32000), e.g. '
                      '--config.pirl.num_negatives=1024.')
  if not 0.0 <= c.momentum < 1.0:
    raise ConfigError(f'config.pirl.momentum={c.momentum} must be in [0, 1): with 1 the memory '
                      'bank would never change (paper: 0.5).')
  if not 0.0 <= c.jigsaw_weight <= 1.0:
    raise ConfigError(f'config.pirl.jigsaw_weight={c.jigsaw_weight} must be in [0, 1]: it is '
                      'lambda, the weight of the jigsaw term (paper: 0.5).')
  if c.temperature <= 0:
    raise ConfigError(f'config.pirl.temperature={c.temperature} must be positive (paper: 0.07).')
  if c.objective not in instdisc.OBJECTIVES:
    raise ConfigError(f'config.pirl.objective={c.objective!r} is unknown; choose one of '
                      f"{instdisc.OBJECTIVES} (the paper's is 'nce').")
  if c.log_partition is not None and not math.isfinite(c.log_partition):
    raise ConfigError(f'config.pirl.log_partition={c.log_partition} must be a finite number, '
                      'or None to estimate log Z once from the first batch.')


def jigsaw(rng: jax.Array, images: jax.Array, *, grid: int,
           tile_size: int) -> tuple[jax.Array, jax.Array]:
  """PIRL's jigsaw transform: one random tile per grid cell, shuffled per example.

  The image is divided into `grid` x `grid` cells of (H // grid) x (W // grid) pixels from the
  top-left corner, numbered row-major; in each cell a `tile_size` square is cropped at a
  uniformly random offset inside the cell; the tiles of each example are then reordered by a
  uniformly random permutation.

  Args:
    rng: key; the output is a deterministic function of it and `images`.
    images: [B, H, W, C].
    grid: cells per side (paper: 3).
    tile_size: side t of the tiles, 1 <= t <= min(H, W) // grid.

  Returns:
    (tiles [B, grid * grid, t, t, C], permutation [B, grid * grid] int32), where
    `tiles[b, j]` was cut from cell `permutation[b, j]` of `images[b]`.

  Raises:
    ValueError: the tiles do not fit the cells.
  """
  b, h, w, _ = images.shape
  cell_h, cell_w = h // grid, w // grid
  if not 1 <= tile_size <= min(cell_h, cell_w):
    raise ValueError(f'jigsaw: tile_size={tile_size} must be in [1, {min(cell_h, cell_w)}] for '
                     f'{h}x{w} images cut into a {grid}x{grid} grid.')
  cells = grid * grid
  # One draw of random bits for everything (each separate threefry call costs compile time):
  # offsets are bits mod the number of positions, and the permutation sorts random 32-bit
  # keys (both uniform up to biases below 1e-7).
  bits = jax.random.bits(rng, (3, b, cells), jnp.uint32)
  top = (jnp.arange(cells) // grid) * cell_h + (bits[0] % (cell_h - tile_size + 1)).astype(
      jnp.int32)  # [B, cells]
  left = (jnp.arange(cells) % grid) * cell_w + (bits[1] % (cell_w - tile_size + 1)).astype(
      jnp.int32)
  offsets = jnp.arange(tile_size)
  rows = (top[..., None] + offsets)[:, :, :, None]  # [B, cells, t, 1]
  cols = (left[..., None] + offsets)[:, :, None, :]  # [B, cells, 1, t]
  example = jnp.arange(b)[:, None, None, None]
  tiles = images[example, rows, cols]  # [B, cells, t, t, C]
  permutation = jnp.argsort(bits[2], axis=-1).astype(jnp.int32)  # [B, cells]
  shuffled = jnp.take_along_axis(tiles, permutation[:, :, None, None, None], axis=1)
  return shuffled, permutation


class JigsawHead(nn.Module):
  """g: tile representations [B, T, F] -> [B, projection_dim].

  Each tile is projected linearly to `projection_dim` (weights shared across tiles), the T
  projections are concatenated in the given order, and a second linear layer maps the
  concatenation to `projection_dim`.
  """
  projection_dim: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, tiles: jax.Array, *, train: bool) -> jax.Array:
    del train  # no BatchNorm
    b, t, _ = tiles.shape
    x = nn.Dense(self.projection_dim, dtype=self.dtype, param_dtype=jnp.float32,
                 name='tile_projection')(tiles.astype(self.dtype))  # [B, T, D]
    x = nn.Dense(self.projection_dim, dtype=self.dtype, param_dtype=jnp.float32,
                 name='dense_out')(x.reshape(b, t * self.projection_dim))
    return x.astype(jnp.float32)


def _encode_train(module: common.EncoderProjector, images: jax.Array, *, train: bool):
  """The encoder alone (no projector), for the tiles."""
  return module.encoder(images, train=train)


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds PIRL from `config.model`, `config.augment` and `config.pirl`."""
  validate(config)
  c = config.pirl
  model = common.encoder_projector(config)  # encoder + f
  head = JigsawHead(config.model.projection_dim, dtype=models.DTYPES[config.model.dtype])  # g
  views = common.views_for(config, 2, 'PIRL')
  tile_size = tile_size_for(config)
  num_examples = info.num_examples
  estimate_partition = c.objective == 'nce' and c.log_partition is None

  def init(rng, images):
    model_rng, head_rng, bank_rng = jax.random.split(rng, 3)
    params, batch_stats = common.init_variables(model, model_rng, images)
    tile_features = jnp.zeros((images.shape[0], c.grid * c.grid, models.features_dim(
        config.model)), jnp.float32)
    params = {**params, 'jigsaw_projector': head.init(head_rng, tile_features,
                                                      train=True)['params']}
    extra = {'bank': memory.init_bank(bank_rng, num_examples, config.model.projection_dim)}
    if estimate_partition:
      extra['log_partition'] = jnp.zeros((), jnp.float32)
      extra['partition_set'] = jnp.zeros((), jnp.bool_)
    return params, batch_stats, extra

  def loss(params, batch_stats, extra, batch, step, rng):
    del step
    jigsaw_rng, negatives_rng = jax.random.split(rng)
    bank = extra['bank']
    network = common.target_subtree(params)  # {'encoder', 'projector'}
    (h, z_image, _), batch_stats = common.apply_train(model, network, batch_stats,
                                                      batch.views[0])
    tiles, _ = jigsaw(jigsaw_rng, batch.views[1], grid=c.grid, tile_size=tile_size)
    b, cells = tiles.shape[:2]
    tile_h, batch_stats = common.apply_train(
        model, network, batch_stats, tiles.reshape((b * cells,) + tiles.shape[2:]),
        method=_encode_train)
    z_jigsaw = head.apply({'params': params['jigsaw_projector']},
                          tile_h.reshape(b, cells, -1), train=True)
    positive = jax.lax.stop_gradient(bank[batch.index])  # m_I before this step's update
    negatives = memory.sample_negatives(negatives_rng, bank, b, c.num_negatives)
    new_extra = {'bank': memory.bank_update(bank, batch.index, z_image, momentum=c.momentum)}
    metrics = {}
    if c.objective == 'nce':
      if estimate_partition:
        def estimate():
          # log of the mean of exp(s / tau) over both terms' similarities (equal-sized sets).
          per_term = [instdisc.estimate_log_partition(x, positive, negatives,
                                                      temperature=c.temperature,
                                                      num_examples=num_examples)
                      for x in (z_jigsaw, z_image)]
          return jnp.logaddexp(*per_term) - jnp.log(2.0)

        log_partition = jax.lax.stop_gradient(jax.lax.cond(
            extra['partition_set'], lambda: extra['log_partition'], estimate))
        new_extra['log_partition'] = log_partition
        new_extra['partition_set'] = jnp.ones((), jnp.bool_)
        metrics['log_partition'] = log_partition
      else:
        log_partition = c.log_partition

      def contrast(x):
        return losses.nce(x, positive, negatives, temperature=c.temperature,
                          log_partition=log_partition, num_examples=num_examples)
    else:
      def contrast(x):
        return losses.info_nce(x, positive, negatives, temperature=c.temperature)

    loss_jigsaw, loss_image = contrast(z_jigsaw), contrast(z_image)
    value = c.jigsaw_weight * loss_jigsaw + (1.0 - c.jigsaw_weight) * loss_image

    def similarity(x):
      return jnp.mean(jnp.sum(losses.l2_normalize(jax.lax.stop_gradient(x)) * positive, -1))

    metrics.update({'loss_jigsaw': loss_jigsaw, 'loss_image': loss_image,
                    'positive_similarity_jigsaw': similarity(z_jigsaw),
                    'positive_similarity_image': similarity(z_image)})
    return value, LossOutput(batch_stats=batch_stats, extra=new_extra, metrics=metrics,
                             features=h, embeddings=(z_image, z_jigsaw))

  def encode(params, batch_stats, images):
    return common.encode_fn(model)(common.target_subtree(params), batch_stats, images)

  return Method(name='pirl', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=encode)
