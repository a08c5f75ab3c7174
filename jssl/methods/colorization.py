"""Colorful image colorization (Zhang, Isola & Efros 2016): predict the colours of an image from
its lightness.

Each augmented view (crop and flip: colours must stay as they are) is converted to CIE Lab. The
encoder (`config.model`, one input channel) sees L / 100; a hypercolumn head reads every feature
map of the encoder, resized to the resolution of map `colorization.target_block` (the paper
predicts at a quarter of the input's; block 1 of the small CNN is half), concatenated, through
Dense -> ReLU -> Dense, and gives a distribution over Q quantised ab colours at every position:

* the ab plane is cut into `bin_size` x `bin_size` cells centred on multiples of `bin_size`
  (10, the paper's), and the cells that some sRGB colour reaches are the Q bins (`ab_bins`;
  313 in the paper, 259 from 32 levels per channel here);
* each target pixel's ab (the view's ab, area-resized to the prediction's resolution) is
  soft-encoded on its `neighbours` nearest bins with Gaussian weights (sigma 5);
* class rebalancing: each pixel's cross-entropy is weighted by w(q*) of its nearest bin, with
  w proportional to 1 / ((1 - lambda) p~ + lambda / Q), p~ the bins' frequency in the training
  split (its first `prior_examples` images) smoothed with a Gaussian (sigma 5), lambda
  `rebalance_lambda` (0.5), normalised so that E_p~[w] = 1.

The representation for the probes is the encoder's pooled output on the L channel of the
evaluation view (the paper transfers its network, which sees L only). At every evaluation,
`eval_examples` test images are coloured with the annealed mean (temperature
`colorization.temperature`, 0.38) and the mean per-pixel ab error is reported next to that of
predicting grey everywhere, with a grid of examples (original, lightness, colourised).
"""

from __future__ import annotations

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jssl import augment
from jssl import models
from jssl.config import ConfigError
from jssl.eval import images as image_files
from jssl.methods import common
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo
from jssl.methods.cmc import _D65_WHITE, _RGB_TO_XYZ, rgb_to_lab
from jssl.models.resnet import feature_maps

AB_EXTENT = 128.0  # a and b of sRGB colours lie well inside [-128, 128]


def lab_to_rgb(lab: jax.Array) -> jax.Array:
  """sRGB in [0, 1] (gamma-encoded, clipped to the gamut) of CIE Lab colours (D65 white);
  the inverse of `jssl.methods.cmc.rgb_to_lab` inside the gamut.

  Args:
    lab: [..., 3] (L in [0, 100]).

  Returns:
    [..., 3] float32.
  """
  lab = jnp.asarray(lab, jnp.float32)
  fy = (lab[..., 0] + 16.0) / 116.0
  f = jnp.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
  delta = 6.0 / 29.0
  t = jnp.where(f > delta, f**3, 3.0 * delta**2 * (f - 4.0 / 29.0))
  xyz = t * jnp.asarray(_D65_WHITE, jnp.float32)
  linear = xyz @ jnp.linalg.inv(jnp.asarray(_RGB_TO_XYZ, jnp.float32)).T
  linear = jnp.clip(linear, 0.0, 1.0)
  power = 1.055 * jnp.power(jnp.maximum(linear, 0.0031308), 1.0 / 2.4) - 0.055
  return jnp.where(linear > 0.0031308, power, 12.92 * linear)


@functools.lru_cache(maxsize=4)
def ab_bins(bin_size: float, levels: int = 32) -> np.ndarray:
  """float32 [Q, 2]: the centres k * bin_size (k integer, as in the paper's grid, so that grey
  is one bin) of the `bin_size` cells of the ab plane that some sRGB colour reaches (every
  colour of a `levels`^3 grid of the RGB cube), in increasing (a, b) order."""
  grid = np.linspace(0.0, 1.0, levels, dtype=np.float32)
  rgb = np.stack(np.meshgrid(grid, grid, grid, indexing='ij'), axis=-1).reshape(-1, 3)
  ab = np.asarray(jax.jit(rgb_to_lab)(rgb))[:, 1:]
  cells = np.unique(np.round(ab / bin_size).astype(np.int64), axis=0)
  return (cells * bin_size).astype(np.float32)


def soft_encode(ab: jax.Array, centres: jax.Array, *, neighbours: int,
                sigma: float) -> jax.Array:
  """Soft targets: [..., 2] ab -> [..., Q], Gaussian weights (sigma) on the `neighbours`
  nearest bin centres, summing to 1; every other bin 0."""
  d2 = jnp.sum((ab[..., None, :] - centres) ** 2, axis=-1)  # [..., Q]
  neg_d2, nearest = jax.lax.top_k(-d2, neighbours)
  weights = jax.nn.softmax(neg_d2 / (2.0 * sigma**2), axis=-1)
  return jnp.sum(jax.nn.one_hot(nearest, centres.shape[0]) * weights[..., None], axis=-2)


def nearest_bins(ab: np.ndarray, centres: np.ndarray, bin_size: float) -> np.ndarray:
  """int [N]: the nearest of the grid's bin `centres` [Q, 2] to each ab [N, 2].

  A point's nearest grid centre is that of its own cell (the cells are the grid's Voronoi
  regions), so a lookup table answers for every point whose cell is a bin; the rare others
  (colours just outside the sampled gamut) are compared with every centre.
  """
  offset = int(np.ceil(AB_EXTENT / bin_size)) + 1
  per_side = 2 * offset + 1
  cell_of = lambda x: np.clip(np.round(np.asarray(x) / bin_size).astype(np.int64) + offset, 0,
                              per_side - 1)
  table = np.full(per_side * per_side, -1, np.int64)
  centre_cells = cell_of(centres)
  table[centre_cells[:, 0] * per_side + centre_cells[:, 1]] = np.arange(len(centres))
  cells = cell_of(ab)
  nearest = table[cells[:, 0] * per_side + cells[:, 1]]
  outside = np.flatnonzero(nearest < 0)
  if outside.size:
    d2 = ((np.asarray(ab)[outside, None, :] - centres[None]) ** 2).sum(-1)
    nearest[outside] = np.argmin(d2, axis=1)
  return nearest


def rebalance_weights(ab: np.ndarray, centres: np.ndarray, *, bin_size: float, lam: float,
                      sigma: float) -> np.ndarray:
  """Zhang et al.'s class-rebalancing weights of the Q bins.

  Args:
    ab: [N, 2] ab values of training pixels.
    centres: [Q, 2] bin centres (`ab_bins(bin_size)`).
    bin_size: the side of the bins' cells.
    lam: weight of the uniform distribution in the mixture (0.5 in the paper).
    sigma: the Gaussian smoothing of the empirical distribution, in ab units (5).

  Returns:
    float32 [Q]: w proportional to 1 / ((1 - lam) p~ + lam / Q), with sum(p~ * w) = 1.
  """
  centres = np.asarray(centres, np.float64)
  nearest = nearest_bins(ab, centres, bin_size)
  p = np.bincount(nearest, minlength=len(centres)).astype(np.float64)
  p /= p.sum()
  kernel = np.exp(-((centres[:, None] - centres[None]) ** 2).sum(-1) / (2 * sigma**2))
  smoothed = kernel @ p
  smoothed /= smoothed.sum()
  w = 1.0 / ((1 - lam) * smoothed + lam / len(centres))
  return (w / np.sum(smoothed * w)).astype(np.float32)


def annealed_mean(logits: jax.Array, centres: jax.Array, temperature: float) -> jax.Array:
  """[..., Q] -> [..., 2]: the mean ab of the distribution re-normalised at `temperature`
  (the paper's compromise between the mean, which is greyish, and the mode)."""
  probs = jax.nn.softmax(jax.nn.log_softmax(logits, axis=-1) / temperature, axis=-1)
  return probs @ centres


class HypercolumnHead(nn.Module):
  """Every feature map resized to `size` x `size`, concatenated, Dense -> ReLU -> Dense(Q)."""
  size: int
  hidden: int
  num_bins: int

  @nn.compact
  def __call__(self, maps):
    resized = [jax.image.resize(m.astype(jnp.float32), (m.shape[0], self.size, self.size,
                                                        m.shape[-1]), 'linear') for m in maps]
    x = nn.relu(nn.Dense(self.hidden)(jnp.concatenate(resized, axis=-1)))
    return nn.Dense(self.num_bins)(x)


def lightness(images: jax.Array) -> jax.Array:
  """[B, H, W, 3] sRGB in [0, 1] (or uint8) -> [B, H, W, 1] L / 100 in [0, 1]."""
  if images.dtype == jnp.uint8:
    images = images.astype(jnp.float32) / 255.0
  return rgb_to_lab(images)[..., :1] / 100.0


def _check(config: ml_collections.ConfigDict, info: TrainInfo) -> None:
  c = config.colorization
  if info.dataset is None or info.dataset.modality != 'image' or info.image_channels != 3:
    raise ConfigError(f'colorization predicts colours from lightness and needs colour images; '
                      f'config.dataset.name={config.dataset.name!r} is not an RGB image dataset '
                      '(use emoji or cifar10).')
  common.require_positive_ints(config, 'colorization', ('neighbours', 'head_hidden',
                                                        'prior_examples', 'eval_examples'))
  for field in ('bin_size', 'sigma', 'temperature'):
    if not c[field] > 0:
      raise ConfigError(f'config.colorization.{field}={c[field]!r} must be > 0.')
  if not 0.0 <= c.rebalance_lambda <= 1.0:
    raise ConfigError(f'config.colorization.rebalance_lambda={c.rebalance_lambda!r} must be in '
                      '[0, 1] (1: no rebalancing; the paper: 0.5).')


def _training_ab(source, count: int) -> np.ndarray:
  """[N, 2] ab of every pixel of the first `count` training images."""
  images = source.get_batch(np.arange(min(count, len(source))))['image']
  lab = jax.jit(rgb_to_lab)(images.astype(np.float32) / 255.0)
  return np.asarray(lab)[..., 1:].reshape(-1, 2)


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds colorization from `config.model`, `config.augment` and `config.colorization`."""
  _check(config, info)
  c = config.colorization
  encoder = models.encoder_from_config(config.model)
  views = common.views_for(config, 1, 'Colorization')
  centres_np = ab_bins(float(c.bin_size))
  centres = jnp.asarray(centres_np)
  weights = jnp.asarray(rebalance_weights(_training_ab(info.dataset.train, c.prior_examples),
                                          centres_np, bin_size=float(c.bin_size),
                                          lam=c.rebalance_lambda, sigma=c.sigma))

  def head_for(maps):
    if not -len(maps) <= c.target_block < len(maps):
      raise ConfigError(f'config.colorization.target_block={c.target_block} is not one of the '
                        f'encoder\'s {len(maps)} feature maps.')
    return HypercolumnHead(size=maps[c.target_block].shape[1], hidden=c.head_hidden,
                           num_bins=centres.shape[0])

  def run(params, batch_stats, grey):
    h, maps, stats = common.encoder_with_maps(encoder, params, batch_stats, grey, None,
                                              'colorization')
    return h, head_for(maps).apply({'params': params['head']}, maps), stats

  def init(rng, images):
    encoder_rng, head_rng = jax.random.split(rng)
    grey = jnp.zeros(images.shape[:3] + (1,), jnp.float32)
    variables = encoder.init(encoder_rng, grey, train=True)
    params, batch_stats = {'encoder': variables['params']}, {'encoder': variables['batch_stats']}
    _, maps, _ = common.encoder_with_maps(encoder, params, batch_stats, grey, None,
                                          'colorization')
    params['head'] = head_for(maps).init(head_rng, maps)['params']
    return params, batch_stats, {}

  def targets(view, size):
    """(soft targets [B, R, R, Q], nearest bin [B, R, R]) of the view's area-resized ab."""
    ab = rgb_to_lab(view)[..., 1:]
    ab = jax.image.resize(ab, (ab.shape[0], size, size, 2), 'linear', antialias=True)
    soft = soft_encode(ab, centres, neighbours=c.neighbours, sigma=c.sigma)
    return soft, jnp.argmax(soft, axis=-1)

  def loss(params, batch_stats, extra, batch, step, rng):
    del step, rng
    (view,) = batch.views
    h, logits, stats = run(params, batch_stats, lightness(view))
    soft, nearest = targets(view, logits.shape[1])
    cross_entropy = -jnp.sum(soft * jax.nn.log_softmax(logits, axis=-1), axis=-1)
    value = jnp.mean(weights[nearest] * cross_entropy)
    accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == nearest)
    return value, LossOutput(batch_stats={'encoder': stats}, extra=extra,
                             metrics={'bin_accuracy': accuracy}, features=h)

  def encode(params, batch_stats, images):
    return encoder.apply({'params': params['encoder'], 'batch_stats': batch_stats['encoder']},
                         lightness(images), train=False)

  def finetune(params, batch_stats, batch, rng):
    (view,) = augment.augment_views(rng, batch['image'], views)
    h, updates = encoder.apply({'params': params['encoder'], 'batch_stats': batch_stats['encoder']},
                               lightness(view), train=True, mutable=['batch_stats'])
    return h, {**batch_stats, 'encoder': updates['batch_stats']}

  @jax.jit
  def colourise(params, batch_stats, images):
    """([B, S, S, 3] annealed-mean colourings, per-image ab error, grey's) of float images."""
    grey = lightness(images)
    _, updates = encoder.apply({'params': params['encoder'], 'batch_stats': batch_stats['encoder']},
                               grey, train=False, mutable=['intermediates'])
    maps = feature_maps(updates['intermediates'])
    logits = head_for(maps).apply({'params': params['head']}, maps)
    ab = annealed_mean(logits, centres, c.temperature)
    ab = jax.image.resize(ab, images.shape[:3] + (2,), 'linear')
    lab = rgb_to_lab(images)
    error = jnp.mean(jnp.linalg.norm(ab - lab[..., 1:], axis=-1), axis=(1, 2))
    grey_error = jnp.mean(jnp.linalg.norm(lab[..., 1:], axis=-1), axis=(1, 2))
    coloured = lab_to_rgb(jnp.concatenate([lab[..., :1], ab], axis=-1))
    return coloured, error, grey_error

  def evaluate(context):
    """`colorization_ab_error` (mean per-pixel Euclidean ab error of the annealed mean on
    `eval_examples` test images) and `colorization_ab_error_grey` (of predicting a = b = 0)."""
    test = context.eval_dataset.test
    count = min(c.eval_examples, len(test))
    images = test.get_batch(np.arange(count))['image'].astype(np.float32) / 255.0
    state = jax.device_get(context.state)
    coloured, error, grey_error = colourise(state.params, state.batch_stats, jnp.asarray(images))
    if context.workdir is not None and jax.process_index() == 0:
      shown = min(count, 16)
      grey = np.repeat(np.asarray(lightness(jnp.asarray(images[:shown]))), 3, axis=-1)
      rows = np.concatenate([images[:shown], grey, np.asarray(coloured[:shown])])
      image_files.save_grid(os.path.join(context.workdir, f'colorized_step{context.step}.png'),
                            np.clip(rows, 0.0, 1.0), columns=shown, scale=3)
    return {'colorization_ab_error': float(np.mean(error)),
            'colorization_ab_error_grey': float(np.mean(grey_error))}

  return Method(name='colorization', views=views, features_dim=encoder.features_dim, init=init,
                loss=loss, encode=encode, finetune=finetune, evaluate=evaluate)
