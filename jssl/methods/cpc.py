"""Contrastive Predictive Coding (van den Oord, Li & Vinyals 2018), on sequences and on images.

Sequences (a time-series dataset, `jssl.data.series`): a strided 1-D convolutional encoder
g_enc maps a series to encodings z_1..z_T' (`model` is not read; `cpc.encoder_widths`,
`encoder_kernel_sizes`, `encoder_strides`), a causal GRU g_ar summarises z_<=t into the context
c_t (`cpc.context_dim`), and one linear map W_k per horizon predicts z_{t+k} from c_t for
k = 1 .. `cpc.prediction_steps`. `jssl.losses.cpc` scores every prediction against every
encoding of the batch (other positions of the same series and every position of the others
are the negatives). Training reads a random window of `cpc.crop_length` steps of each series
(0: the whole series), as CPC trains on random windows of audio.

Images: each view is cut into a grid of `cpc.patch_size` patches with stride
`cpc.patch_stride` (overlapping by half, as the paper's 64-pixel patches every 32 pixels), the
config's image encoder (`config.model`) encodes each patch, a row-causal convolutional context
network (`jssl.models.sequence.RowCausalContext`) sees the rows above and the current one, and
W_k predicts the patch k rows below in the same column; the columns are the sequences of the
loss.

Representation for the probes (`cpc.represent`): for sequences the mean over real steps of
the context c_t ('context', CPC's speaker classification used c) or of z_t ('encoder'); for
images the mean of the patch encodings over the grid (the paper's linear evaluation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import flax.linen as nn
import ml_collections

from jssl import augment
from jssl import losses
from jssl import models
from jssl.config import ConfigError
from jssl.methods import common
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo
from jssl.models.sequence import Conv1DEncoder, GRUContext, RowCausalContext, step_mask

REPRESENTATIONS = ('context', 'encoder')


def random_windows(rng: jax.Array, series: jax.Array, lengths: jax.Array,
                   length: int) -> tuple[jax.Array, jax.Array]:
  """A window of `length` steps of each series, starting uniformly within its real steps.

  Args:
    rng: key.
    series: [B, T, C], real for the first lengths[b] steps of row b.
    lengths: int [B] in [1, T].
    length: the window's length (<= T).

  Returns:
    (windows [B, length, C], window lengths int32 [B]): a series shorter than `length` is
    taken whole (start 0) and keeps its own length; steps past it are zeros.
  """
  slack = jnp.maximum(lengths - length, 0)
  start = jnp.floor(jax.random.uniform(rng, lengths.shape) * (slack + 1)).astype(jnp.int32)
  start = jnp.minimum(start, slack)
  positions = start[:, None] + jnp.arange(length)[None, :]
  windows = jnp.take_along_axis(series, jnp.minimum(positions, series.shape[1] - 1)[..., None],
                                axis=1)
  new_lengths = jnp.minimum(lengths, length).astype(jnp.int32)
  return windows * step_mask(new_lengths, length)[..., None], new_lengths


def patch_grid(images: jax.Array, patch_size: int, stride: int) -> jax.Array:
  """[B, S, S, C] -> [B, R, R, patch_size, patch_size, C], R = (S - patch_size) // stride + 1;
  patch (r, c) is images[:, r*stride : r*stride + patch_size, c*stride : ...]."""
  side = images.shape[1]
  count = (side - patch_size) // stride + 1
  rows = [jnp.stack([images[:, r * stride:r * stride + patch_size,
                            c * stride:c * stride + patch_size] for c in range(count)], axis=1)
          for r in range(count)]
  return jnp.stack(rows, axis=1)


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
  """[B, T, D], bool [B, T] -> [B, D]: the mean over the True steps of each row."""
  weights = mask.astype(x.dtype)[..., None]
  return jnp.sum(x * weights, axis=1) / jnp.maximum(jnp.sum(weights, axis=1), 1.0)


class SeriesCPC(nn.Module):
  """g_enc, g_ar and the W_k of sequence CPC."""
  encoder: Conv1DEncoder
  context_dim: int
  prediction_steps: int

  def setup(self):
    self.context = GRUContext(self.context_dim)
    self.predictor = nn.Dense(self.prediction_steps * self.encoder.features_dim)

  def __call__(self, series, lengths):
    """-> (z [B, T', D], mask [B, T'], c [B, T', H], predictions [K, B, T', D])."""
    z, new_lengths = self.encoder(series, lengths)
    c = self.context(z)
    batch, steps, dim = z.shape
    predictions = self.predictor(c).reshape(batch, steps, self.prediction_steps, dim)
    return z, step_mask(new_lengths, steps), c, jnp.moveaxis(predictions, 2, 0)

  def represent(self, series, lengths, which: str):
    z, mask, c, _ = self(series, lengths)
    return masked_mean(c if which == 'context' else z, mask)


class ImageCPC(nn.Module):
  """A patch encoder, the row-causal context and the W_k of image CPC."""
  encoder: nn.Module
  context_dim: int
  context_layers: int
  prediction_steps: int
  patch_size: int
  patch_stride: int

  def setup(self):
    self.context = RowCausalContext(self.context_dim, self.context_layers)
    self.predictor = nn.Dense(self.prediction_steps * self.encoder.features_dim)

  def grid(self, images, train: bool):
    """[B, S, S, C] -> patch encodings [B, R, R, F]."""
    patches = patch_grid(images, self.patch_size, self.patch_stride)
    batch, rows, cols = patches.shape[:3]
    h = self.encoder(patches.reshape((-1,) + patches.shape[3:]), train=train)
    return h.reshape(batch, rows, cols, -1)

  def __call__(self, images, train: bool):
    """-> (h [B, R, R, F], predictions [B, R, R, K, F])."""
    h = self.grid(images, train)
    predictions = self.predictor(self.context(h))
    return h, predictions.reshape(h.shape[:3] + (self.prediction_steps, h.shape[-1]))

  def represent(self, images, train: bool = False):
    """[B, F]: the mean patch encoding."""
    return jnp.mean(self.grid(images, train), axis=(1, 2))


def grid_to_sequences(h: jax.Array, predictions: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Columns of the grid as the loss's sequences, rows as its steps:
  h [B, R, C, F] -> future [B * C, R, F]; predictions [B, R, C, K, F] -> [K, B * C, R, F]."""
  batch, rows, cols, dim = h.shape
  future = jnp.swapaxes(h, 1, 2).reshape(batch * cols, rows, dim)
  preds = jnp.transpose(predictions, (3, 0, 2, 1, 4)).reshape(-1, batch * cols, rows, dim)
  return future, preds


def _check(config: ml_collections.ConfigDict, info: TrainInfo) -> str:
  """The data's modality ('series' or 'image'), after checking the settings."""
  c = config.cpc
  common.require_positive_ints(config, 'cpc', ('prediction_steps', 'context_dim'))
  if not c.temperature > 0:
    raise ConfigError(f'config.cpc.temperature={c.temperature!r} must be > 0 (1: CPC\'s critic).')
  modality = info.dataset.modality if info.dataset is not None else 'image'
  if modality == 'series':
    layers = (tuple(c.encoder_widths), tuple(c.encoder_kernel_sizes), tuple(c.encoder_strides))
    if not layers[0] or len(set(map(len, layers))) != 1:
      raise ConfigError('config.cpc.encoder_widths, encoder_kernel_sizes and encoder_strides '
                        f'need one entry per layer; got {layers[0]}, {layers[1]}, {layers[2]}.')
    if any(not isinstance(v, int) or v < 1 for layer in layers for v in layer):
      raise ConfigError('config.cpc.encoder_widths, encoder_kernel_sizes and encoder_strides '
                        'must be positive integers.')
    if c.represent not in REPRESENTATIONS:
      raise ConfigError(f'config.cpc.represent={c.represent!r} is unknown; choose one of '
                        f'{list(REPRESENTATIONS)}.')
    steps = c.crop_length or info.dataset.series_shape[0]
    if c.crop_length < 0 or c.crop_length > info.dataset.series_shape[0]:
      raise ConfigError(f'config.cpc.crop_length={c.crop_length} must be in [0, '
                        f'{info.dataset.series_shape[0]}] (the longest series of '
                        f'{config.dataset.name!r}; 0 reads whole series).')
    stride = 1
    for s in c.encoder_strides:
      stride *= s
    encoded = -(-steps // stride)
    if c.prediction_steps >= encoded:
      raise ConfigError(f'config.cpc.prediction_steps={c.prediction_steps} needs more than that '
                        f'many encoded steps; a window of {steps} steps gives {encoded} after the '
                        f'encoder\'s stride {stride}: predict fewer steps, lengthen '
                        'cpc.crop_length or reduce cpc.encoder_strides.')
    return modality
  if modality != 'image':
    raise ConfigError(f'CPC trains on time series or images; {config.dataset.name!r} is '
                      f'{modality} data (e.g. basic_motions, japanese_vowels, digits).')
  common.require_positive_ints(config, 'cpc', ('patch_size', 'patch_stride', 'context_layers'))
  side = config.dataset.image_size
  if c.patch_size > side:
    raise ConfigError(f'config.cpc.patch_size={c.patch_size} is larger than the '
                      f'{side}x{side} views (config.dataset.image_size).')
  rows = (side - c.patch_size) // c.patch_stride + 1
  if c.prediction_steps >= rows:
    raise ConfigError(f'config.cpc.prediction_steps={c.prediction_steps} needs a grid of more '
                      f'rows; {side}x{side} views cut into {c.patch_size}-pixel patches every '
                      f'{c.patch_stride} give {rows} rows: predict fewer rows, use smaller '
                      'patches or stride, or larger views.')
  return modality


def _diagnostic_pair(predictions, future, mask):
  """Two [B, D] outputs about the same examples for the collapse diagnostics: the mean
  one-step-ahead prediction and the mean of the encodings it predicts."""
  counted = mask[:, :-1] & mask[:, 1:]
  return masked_mean(predictions[0, :, :-1], counted), masked_mean(future[:, 1:], counted)


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds CPC for the config's dataset: sequence CPC on time series, patch CPC on images."""
  modality = _check(config, info)
  c = config.cpc
  if modality == 'series':
    return _series_method(config, info)
  model = ImageCPC(encoder=models.encoder_from_config(config.model), context_dim=c.context_dim,
                   context_layers=c.context_layers, prediction_steps=c.prediction_steps,
                   patch_size=c.patch_size, patch_stride=c.patch_stride)
  views = common.views_for(config, 1, 'CPC')

  def init(rng, images):
    variables = model.init(rng, images, train=True)
    return variables['params'], variables.get('batch_stats', {}), {}

  def loss(params, batch_stats, extra, batch, step, rng):
    del step, rng
    (view,) = batch.views
    (h, predictions), updates = model.apply({'params': params, 'batch_stats': batch_stats},
                                            view, train=True, mutable=['batch_stats'])
    future, preds = grid_to_sequences(h, predictions)
    value = losses.cpc(preds, future, temperature=c.temperature)
    features = jnp.mean(h, axis=(1, 2))
    mask = jnp.ones(future.shape[:2], bool)
    pair = _diagnostic_pair(preds, future, mask)
    pair = tuple(p.reshape(h.shape[0], -1) for p in pair)  # every column of one image
    return value, LossOutput(batch_stats=updates['batch_stats'], extra=extra, metrics={},
                             features=features, embeddings=pair)

  def encode(params, batch_stats, images):
    return model.apply({'params': params, 'batch_stats': batch_stats}, images,
                       method=ImageCPC.represent)

  def finetune(params, batch_stats, batch, rng):
    images = augment.augment_views(rng, batch['image'], views)[0]
    features, updates = model.apply({'params': params, 'batch_stats': batch_stats}, images,
                                    True, method=ImageCPC.represent, mutable=['batch_stats'])
    return features, updates['batch_stats']

  return Method(name='cpc', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=encode, finetune=finetune)


def _series_method(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  c = config.cpc
  encoder = Conv1DEncoder(widths=tuple(c.encoder_widths),
                          kernel_sizes=tuple(c.encoder_kernel_sizes),
                          strides=tuple(c.encoder_strides), dtype=models.DTYPES[config.model.dtype])
  model = SeriesCPC(encoder=encoder, context_dim=c.context_dim,
                    prediction_steps=c.prediction_steps)
  steps, channels = info.dataset.series_shape
  window = c.crop_length or steps

  def init(rng, example):
    del example  # the series' shape comes from the dataset
    series = jnp.zeros((2, window, channels), jnp.float32)
    params = model.init(rng, series, jnp.full((2,), window, jnp.int32))['params']
    return params, {}, {}

  def prepare(rng, batch, constants):
    """{'series' [B, window, C], 'length' [B]}: a random window of each series."""
    del constants
    series, lengths = batch['series'].astype(jnp.float32), batch['length'].astype(jnp.int32)
    if c.crop_length:
      series, lengths = random_windows(rng, series, lengths, c.crop_length)
    return {'series': series, 'length': lengths}

  def loss(params, batch_stats, extra, inputs, step, rng):
    del step, rng
    z, mask, context, predictions = model.apply({'params': params}, inputs['series'],
                                                inputs['length'])
    value = losses.cpc(predictions, z, temperature=c.temperature, mask=mask)
    features = masked_mean(context if c.represent == 'context' else z, mask)
    return value, LossOutput(batch_stats=batch_stats, extra=extra, metrics={},
                             features=features,
                             embeddings=_diagnostic_pair(predictions, z, mask))

  def represent(params, batch_stats, batch, constants):
    """[B, F]: the mean over real steps of c_t (or z_t) of whole series."""
    del batch_stats, constants
    return model.apply({'params': params}, jnp.asarray(batch['series'], jnp.float32),
                       jnp.asarray(batch['length'], jnp.int32), c.represent,
                       method=SeriesCPC.represent)

  def finetune(params, batch_stats, batch, rng):
    del rng  # no dropout or BatchNorm: fine-tuning sees what the probes see
    return represent(params, batch_stats, batch, {}), batch_stats

  features_dim = c.context_dim if c.represent == 'context' else encoder.features_dim
  return Method(name='cpc', views=(), features_dim=features_dim, init=init, loss=loss,
                encode=None, prepare=prepare, represent=represent, finetune=finetune)
