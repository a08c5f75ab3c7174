"""CMC (Tian, Krishnan & Isola 2019): Contrastive Multiview Coding, memory-bank version.

One augmented view of each image (random crop + flip, no colour distortion) is split into two
*channel* views, and each channel view has its OWN encoder and projector. Each projection is
contrasted against the other view's memory bank:
  * anchor z1_i (view 1 of example i) — positive: row i of view 2's bank; negatives: K rows of
    view 2's bank drawn uniformly from the other examples;
  * symmetrically, anchor z2_i against view 1's bank;
and the loss is the sum of the two (CMC's L(V1, V2) = L_{V1->V2} + L_{V2->V1}). After the loss,
each bank's rows of the batch move towards the batch's new embeddings,
`bank[i] <- normalise(m * bank[i] + (1 - m) * normalise(z_i))`, m = 0.5 (`memory.bank_update`).
The positives and negatives are the banks as they were before this batch, and get no gradient.

The two channel views (`split_views`):
  * colour images (3 channels): L vs ab of CIE Lab (sRGB in [0, 1], D65 white; `rgb_to_lab`),
    the paper's main ImageNet/STL-10 setting. L in [0, 100] is scaled to (L - 50) / 50 and ab
    (within about +-110 for sRGB colours) to ab / 110, both roughly in [-1, 1].
  * grayscale images (1 channel), where there is no colour to split: a low-pass view (Gaussian
    blur, sigma `config.cmc.lowpass_sigma`) vs the high-pass residual (image - low-pass). Like L
    and ab they are complementary and together give back the image exactly; they share the
    image's content (which digit, which garment) but differ in its nuisances (fine strokes and
    edges vs coarse brightness layout), so what one view predicts of the other is the shared
    content, CMC's premise. Low-pass is scaled to (x - 0.5) / 0.5, the residual to x / 0.5.
  The encoders are built with mean 0 and std 1 (inputs are already scaled); since every first
  convolution is followed by BatchNorm, the scales matter little.

Choices where the paper leaves room, and why:
  * Objective: CMC describes both a softmax (cross-entropy over 1 + K candidates) and an NCE
    form. The softmax form (`losses.info_nce`) is the default: it needs no estimate of the
    partition function and is the form later memory-bank and queue methods kept.
    `config.cmc.objective='nce'` selects NCE (`losses.nce`), with log Z of each direction
    estimated once, on the first batch, as in CMC's code: log Z = log N + log mean exp(s) over
    that batch's positive and negative scores s.
  * Negatives are drawn uniformly from the *other* examples (never the anchor's own row). CMC's
    code draws them from all N rows, which can pick the positive as a negative with
    probability K / N per query: negligible on ImageNet (K = 16384, N = 1.28M), but K is a
    large fraction of N on small data sets. Both views use the same drawn rows (as in CMC's
    code, one draw per batch).
  * Each view has a full encoder (as CMC's ResNets; its AlexNet halves the width per view);
    evaluation, the online probe and `Method.encode` use the concatenation of both encoders'
    features, as CMC evaluates, so `features_dim` is twice the encoder's.
  * Projector: `config.model`'s MLP head per view (CMC used a linear layer to 128-d).
  * Banks start as random unit vectors (`memory.init_bank`).
  * The augmentation must leave colours alone for RGB data (`validate` rejects colour jitter
    with saturation or hue, and grayscale conversion): use `config.augment.preset='crop_flip'`.

Parameters: {'encoder_1', 'projector_1', 'encoder_2', 'projector_2'}; view 1 is L (colour) or
the low-pass view (grayscale), view 2 is ab or the high-pass residual.

State (`extra`): 'bank_1' [N, D] and 'bank_2' [N, D], unit memory-bank embeddings of every
training example in view 1 and view 2 (N = TrainInfo.num_examples, D = projection_dim); with
objective 'nce' also 'log_partition' [2], log Z of the scores of view 1's anchors against bank 2
and of view 2's anchors against bank 1 (estimated at step 0, then fixed).
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jssl import losses, models
from jssl.augment.image import gaussian_blur
from jssl.config import ConfigError
from jssl.methods import common, memory
from jssl.methods.base import LossOutput, Method, TrainInfo

OBJECTIVES = ('softmax', 'nce')

# sRGB (linear) -> CIE XYZ under the D65 white point (IEC 61966-2-1).
_RGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375),
               (0.2126729, 0.7151522, 0.0721750),
               (0.0193339, 0.1191920, 0.9503041))
_D65_WHITE = (0.95047, 1.0, 1.08883)
_LAB_EPSILON = (6.0 / 29.0) ** 3

# Roughly unit-range scalings of the channel views (see the module docstring).
_AB_SCALE = 110.0


def rgb_to_lab(rgb: jax.Array) -> jax.Array:
  """CIE L*a*b* of sRGB colours (D65 white).

  Args:
    rgb: [..., 3] sRGB values in [0, 1] (gamma-encoded, as stored in images).

  Returns:
    [..., 3] float32 (L in [0, 100], a and b roughly in [-110, 110]); white -> (100, 0, 0).
  """
  if rgb.shape[-1] != 3:
    raise ValueError(f'rgb_to_lab expects [..., 3] sRGB values; got shape {rgb.shape}.')
  rgb = jnp.asarray(rgb, jnp.float32)
  # Undo the sRGB transfer curve (the power branch only sees values above its threshold).
  power = jnp.power((jnp.maximum(rgb, 0.04045) + 0.055) / 1.055, 2.4)
  linear = jnp.where(rgb > 0.04045, power, rgb / 12.92)
  xyz = linear @ jnp.asarray(_RGB_TO_XYZ, jnp.float32).T
  t = xyz / jnp.asarray(_D65_WHITE, jnp.float32)
  cube_root = jnp.cbrt(jnp.maximum(t, _LAB_EPSILON))
  f = jnp.where(t > _LAB_EPSILON, cube_root, t / (3.0 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
  fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
  return jnp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lowpass_kernel_size(sigma: float) -> int:
  """Odd Gaussian kernel size covering +-2 sigma."""
  return 2 * math.ceil(2.0 * sigma) + 1


def lowpass_highpass(images: jax.Array, *, sigma: float) -> tuple[jax.Array, jax.Array]:
  """Gaussian low-pass of each image and the residual; low + high == images.

  Args:
    images: [B, H, W, C] in [0, 1], H and W > 2 * sigma rounded up.
    sigma: blur standard deviation in pixels.

  Returns:
    (low [B, H, W, C] in [0, 1], high [B, H, W, C] = images - low).
  """
  kernel_size = lowpass_kernel_size(sigma)
  low = jax.vmap(lambda x: gaussian_blur(x, sigma, kernel_size=kernel_size))(images)
  return low, images - low


def split_views(images: jax.Array, *, lowpass_sigma: float) -> tuple[jax.Array, jax.Array]:
  """The two channel views of CMC, scaled to roughly [-1, 1].

  Args:
    images: [B, H, W, C] in [0, 1] with C = 3 (sRGB) or 1 (grayscale).
    lowpass_sigma: blur sigma (pixels) of the grayscale low-pass view.

  Returns:
    C = 3: (L [B, H, W, 1], ab [B, H, W, 2]); C = 1: (low-pass [B, H, W, 1],
    high-pass [B, H, W, 1]).
  """
  channels = images.shape[-1]
  if channels == 3:
    lab = rgb_to_lab(images)
    return (lab[..., :1] - 50.0) / 50.0, lab[..., 1:] / _AB_SCALE
  if channels == 1:
    low, high = lowpass_highpass(images.astype(jnp.float32), sigma=lowpass_sigma)
    return (low - 0.5) / 0.5, high / 0.5
  raise ValueError(f'CMC splits 1- or 3-channel images; got {channels} channels.')


def sample_other_rows(rng: jax.Array, index: jax.Array, *, num_examples: int,
                      count: int) -> jax.Array:
  """`count` uniform draws (with replacement) from [0, num_examples) minus each row's own index.

  Args:
    rng: key.
    index: [B] int rows of the anchors, in [0, num_examples).
    num_examples: N >= 2, the bank's length.
    count: K draws per anchor.

  Returns:
    [B, K] int32 rows, row b never equal to index[b].
  """
  draw = jax.random.randint(rng, (index.shape[0], count), 0, num_examples - 1)
  return (draw + (draw >= index[:, None])).astype(jnp.int32)


class TwoViewNetwork(nn.Module):
  """An encoder and projector per channel view.

  `__call__(x1, x2)` returns ((h1, z1), (h2, z2)); `encode(x1, x2)` the concatenated
  representation [B, F1 + F2] in inference mode.
  """
  encoder_1: nn.Module
  projector_1: nn.Module
  encoder_2: nn.Module
  projector_2: nn.Module

  def __call__(self, x1, x2, *, train: bool):
    h1 = self.encoder_1(x1, train=train)
    h2 = self.encoder_2(x2, train=train)
    return (h1, self.projector_1(h1, train=train)), (h2, self.projector_2(h2, train=train))

  def encode(self, x1, x2):
    return jnp.concatenate([self.encoder_1(x1, train=False), self.encoder_2(x2, train=False)],
                           axis=-1)


def network(config: ml_collections.ConfigDict) -> TwoViewNetwork:
  """Two of `config.model`'s encoder + projector, the encoders taking inputs already scaled to
  about [-1, 1] (mean 0, std 1: no normalisation inside)."""
  m = config.model
  widths = m.get('widths')

  def encoder():
    return models.create_encoder(m.encoder, stem=m.stem, width_multiplier=m.width_multiplier,
                                 widths=tuple(widths) if widths else None, dtype=m.dtype,
                                 mean=0.0, std=1.0)

  return TwoViewNetwork(encoder_1=encoder(), projector_1=common.projection_head(config),
                        encoder_2=encoder(), projector_2=common.projection_head(config))


def validate(config: ml_collections.ConfigDict, info: TrainInfo, views: tuple) -> None:
  """Checks `config.cmc` and the augmentation against the data; raises ConfigError."""
  c = config.cmc
  if c.objective not in OBJECTIVES:
    raise ConfigError(f'config.cmc.objective={c.objective!r} is unknown; choose one of '
                      f"{OBJECTIVES} (CMC's softmax / NCE forms).")
  if c.temperature <= 0:
    raise ConfigError(f'config.cmc.temperature={c.temperature} must be positive (CMC: 0.07).')
  if not 0.0 <= c.bank_momentum < 1.0:
    raise ConfigError(f'config.cmc.bank_momentum={c.bank_momentum} must be in [0, 1) '
                      '(CMC: 0.5).')
  if c.num_negatives < 1:
    raise ConfigError(f'config.cmc.num_negatives={c.num_negatives} must be >= 1 (CMC: 4096 to '
                      '16384; a few hundred to a few thousand for small data sets).')
  if info.num_examples < 2:
    raise ConfigError(f'CMC needs at least 2 training examples to draw negatives from; the '
                      f'training split has {info.num_examples}.')
  if info.image_channels not in (1, 3):
    raise ConfigError(f'CMC splits 1-channel (low/high-pass) or 3-channel (L/ab) images; '
                      f'config.dataset.name={config.dataset.name!r} has {info.image_channels}.')
  if info.image_channels == 1:
    radius = lowpass_kernel_size(c.lowpass_sigma) // 2 if c.lowpass_sigma > 0 else 0
    if not 0 < radius < config.dataset.image_size:
      raise ConfigError(
          f'config.cmc.lowpass_sigma={c.lowpass_sigma} must be positive with 2 * sigma < '
          f'config.dataset.image_size={config.dataset.image_size}, e.g. 1.5 for 16x16 views.')
  view = views[0]
  if info.image_channels == 3 and (
      view.grayscale_prob > 0 or (view.jitter_prob > 0 and (view.saturation > 0 or view.hue > 0))):
    raise ConfigError(
        f'config.augment.preset={config.augment.preset!r} changes colours (grayscale or '
        'saturation / hue jitter), which corrupts the ab view of CMC; use '
        '--config.augment.preset=crop_flip.')


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds CMC from `config.model`, `config.augment` and `config.cmc`."""
  views = common.views_for(config, 1, 'CMC')
  validate(config, info, views)
  c = config.cmc
  model = network(config)
  split = functools.partial(split_views, lowpass_sigma=c.lowpass_sigma)

  def init(rng, images):
    model_rng, bank_rng_1, bank_rng_2 = jax.random.split(rng, 3)
    variables = model.init(model_rng, *split(images), train=True)
    dim = config.model.projection_dim
    extra = {'bank_1': memory.init_bank(bank_rng_1, info.num_examples, dim),
             'bank_2': memory.init_bank(bank_rng_2, info.num_examples, dim)}
    if c.objective == 'nce':
      extra['log_partition'] = jnp.zeros((2,), jnp.float32)
    return variables['params'], variables.get('batch_stats', {}), extra

  def log_partition_estimate(anchor, positive, negatives):
    """log Z = log N + log mean exp(s) over one batch's scores (CMC's code), no gradient."""
    a = losses.l2_normalize(jax.lax.stop_gradient(anchor))
    scores = jnp.concatenate([jnp.sum(a * positive, -1)[:, None],
                              jnp.einsum('bd,bkd->bk', a, negatives)], axis=-1) / c.temperature
    return jax.nn.logsumexp(scores) - math.log(scores.size) + math.log(info.num_examples)

  def objective(anchor, positive, negatives, log_partition):
    if c.objective == 'softmax':
      return losses.info_nce(anchor, positive, negatives, temperature=c.temperature)
    return losses.nce(anchor, positive, negatives, temperature=c.temperature,
                      log_partition=log_partition, num_examples=info.num_examples)

  def loss(params, batch_stats, extra, batch, step, rng):
    x1, x2 = split(batch.views[0])
    ((h1, z1), (h2, z2)), batch_stats = common.apply_train(model, params, batch_stats, x1, x2)
    index = batch.index
    # The same K rows (never the anchor's own) for both directions, as one draw in CMC.
    rows = sample_other_rows(rng, index, num_examples=info.num_examples,
                             count=c.num_negatives)
    bank_1 = jax.lax.stop_gradient(extra['bank_1'])
    bank_2 = jax.lax.stop_gradient(extra['bank_2'])
    positive_1, negatives_1 = bank_1[index], bank_1[rows]  # for view 2's anchors
    positive_2, negatives_2 = bank_2[index], bank_2[rows]  # for view 1's anchors
    new_extra = {}
    log_partition = (None, None)
    if c.objective == 'nce':
      estimate = jnp.stack([log_partition_estimate(z1, positive_2, negatives_2),
                            log_partition_estimate(z2, positive_1, negatives_1)])
      log_partition = jnp.where(step == 0, estimate, extra['log_partition'])
      new_extra['log_partition'] = jax.lax.stop_gradient(log_partition)
    loss_12 = objective(z1, positive_2, negatives_2, log_partition[0])
    loss_21 = objective(z2, positive_1, negatives_1, log_partition[1])
    value = loss_12 + loss_21
    new_extra['bank_1'] = memory.bank_update(bank_1, index, z1, momentum=c.bank_momentum)
    new_extra['bank_2'] = memory.bank_update(bank_2, index, z2, momentum=c.bank_momentum)
    n1 = losses.l2_normalize(jax.lax.stop_gradient(z1))
    n2 = losses.l2_normalize(jax.lax.stop_gradient(z2))
    metrics = {'loss_1_to_2': loss_12, 'loss_2_to_1': loss_21,
               'cross_view_cosine': jnp.mean(jnp.sum(n1 * n2, axis=-1)),
               'bank_positive_cosine': jnp.mean(jnp.sum(n1 * positive_2, axis=-1))}
    features = jnp.concatenate([h1, h2], axis=-1)
    return value, LossOutput(batch_stats=batch_stats, extra=new_extra, metrics=metrics,
                             features=features, embeddings=(z1, z2))

  def encode(params, batch_stats, images):
    return model.apply({'params': params, 'batch_stats': batch_stats}, *split(images),
                       method=TwoViewNetwork.encode)

  return Method(name='cmc', views=views, features_dim=2 * models.features_dim(config.model),
                init=init, loss=loss, encode=encode)
