"""Masked autoencoder (He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022):
a ViT encoder sees a random subset of an image's patches, a light decoder predicts the pixels
of the others.

Data: the stored grey levels in [0, 1] (uint8 / 255) at the stored size, cut into
`config.mae.patch_size`-pixel square patches (`jssl.models.vit.patchify`, N of them).

Masking (`prepare`, on the device, one key per example): the N patches of every example are
shuffled by the argsort of N uniform draws, the first K = round((1 - mask_ratio) * N) of the
shuffled order are kept (Python's `round`, so the realised ratio is 1 - K / N: 0.875 for 0.9
of 16 patches) and the other N - K are masked. A new mask every step.

Networks (`jssl.models.vit`): `MAEEncoder` embeds and encodes the K visible patches only
(gathered by index before the patch embedding, so a masked patch never reaches it);
`MAEDecoder` (narrower, fewer blocks) gets the encoder's tokens plus a learned mask token at
every masked position, unshuffled back to the patch order, and predicts every patch's pixels.
Loss: `jssl.losses.mae_loss`, the mean squared error over the masked patches only, of the
pixels or (`config.mae.norm_pix`) of each patch normalised by its own mean and variance.

Representation (`represent`, for the kNN / linear probes, and `finetune`, the same in training
mode with gradients): the encoder on all N patches (no masking), the mean of its patch tokens
after the final LayerNorm (the class token, when `config.mae.class_token`, attends but is not
pooled; MAE fine-tunes with this global average pooling). The online probe reads the same
mean over the *visible* tokens of the training step's masked images.

Evaluation (`evaluate`), on the first `config.mae.eval_examples` test images, each masked with
a fixed key (the same masks at every evaluation): `reconstruction_mse`, the mean squared error
per pixel (grey levels in [0, 1]) of the masked patches' reconstructions — with `norm_pix` the
predictions are mapped back to pixels with the true patch's mean and variance (as the paper's
figures do), so it is only comparable between runs of the same `norm_pix`; `mae_test_loss`,
the training objective on those images; and a PNG of 16 test images (top row), their masked
inputs (masked patches grey) and the reconstructions with the visible patches pasted in
(`reconstructions_step<N>.png`).
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jssl import losses
from jssl import models
from jssl.config import ConfigError
from jssl.eval import evaluate as evaluation
from jssl.methods import common
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo
from jssl.models import vit

_EVAL_MASK_SEED = 2022  # the one masking of the test images every evaluation uses
_GRID_IMAGES = 16


def num_kept(num_patches: int, mask_ratio: float) -> int:
  """K = round((1 - mask_ratio) * N), the visible patches per example."""
  return int(round((1.0 - mask_ratio) * num_patches))


def random_masking(rng: jax.Array, batch_size: int, num_patches: int, num_keep: int
                   ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """MAE's per-example random masking by the argsort of uniform noise.

  Args:
    rng: a key, split into one key per example.
    batch_size: B.
    num_patches: N.
    num_keep: K, the visible patches per example (1 <= K < N).

  Returns:
    (keep int32 [B, K]: the visible patches, the first K of the shuffled order;
     restore int32 [B, N]: the place of every patch in the shuffled order (argsort of the
     shuffle: the decoder's unshuffle); mask float32 [B, N]: 1 where the patch is masked,
     exactly N - K per example).
  """

  def one(key):
    shuffle = jnp.argsort(jax.random.uniform(key, (num_patches,)))
    restore = jnp.argsort(shuffle)
    return (shuffle[:num_keep].astype(jnp.int32), restore.astype(jnp.int32),
            (restore >= num_keep).astype(jnp.float32))

  return jax.vmap(one)(jax.random.split(rng, batch_size))


def _check(config: ml_collections.ConfigDict, info: TrainInfo) -> tuple[int, ...]:
  c = config.mae
  shape = common.stored_image_shape(config, info, 'mae')
  common.require_positive_ints(config, 'mae', (
      'patch_size', 'hidden_dim', 'num_layers', 'num_heads', 'mlp_dim', 'decoder_hidden_dim',
      'decoder_num_layers', 'decoder_num_heads', 'decoder_mlp_dim', 'eval_examples'))
  height, width, _ = shape
  if height % c.patch_size or width % c.patch_size:
    divisors = [p for p in range(1, min(height, width) + 1) if height % p == 0 and width % p == 0]
    raise ConfigError(f'config.mae.patch_size={c.patch_size} does not divide the stored '
                      f'{height}x{width} images of {config.dataset.name!r}; choose one of '
                      f'{divisors[:-1]}.')
  num_patches = (height // c.patch_size) * (width // c.patch_size)
  if num_patches < 2:
    raise ConfigError(f'config.mae.patch_size={c.patch_size} makes a single patch of the '
                      f'{height}x{width} images: nothing could be masked; use a smaller patch.')
  ratio = c.mask_ratio
  if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 < ratio < 1.0:
    raise ConfigError(f'config.mae.mask_ratio={ratio!r} must be in (0, 1) (the paper: 0.75); '
                      'it is the fraction of patches removed from the encoder.')
  keep = num_kept(num_patches, ratio)
  if not 1 <= keep < num_patches:
    raise ConfigError(f'config.mae.mask_ratio={ratio} keeps round((1 - {ratio}) * {num_patches}) '
                      f'= {keep} of the {num_patches} patches; at least one must be visible and '
                      f'one masked: use a ratio in [{1.5 / num_patches:.3f}, '
                      f'{1 - 1.5 / num_patches:.3f}] or another patch size.')
  for prefix in ('', 'decoder_'):
    dim, heads = c[prefix + 'hidden_dim'], c[prefix + 'num_heads']
    if dim % heads:
      raise ConfigError(f'config.mae.{prefix}hidden_dim={dim} must be divisible by '
                        f'config.mae.{prefix}num_heads={heads}.')
  if c.position_embedding not in vit.POSITION_EMBEDDINGS:
    raise ConfigError(f'config.mae.position_embedding={c.position_embedding!r} is unknown; '
                      f'choose one of {vit.POSITION_EMBEDDINGS}.')
  if c.position_embedding == 'sincos' and c.hidden_dim % 4:
    raise ConfigError(f'config.mae.hidden_dim={c.hidden_dim} must be a multiple of 4 for the '
                      "2-D sine-cosine positions (or set --config.mae.position_embedding=learned).")
  if c.decoder_hidden_dim % 4:
    raise ConfigError(f'config.mae.decoder_hidden_dim={c.decoder_hidden_dim} must be a multiple '
                      'of 4 (the decoder has 2-D sine-cosine positions).')
  for field in ('norm_pix', 'class_token'):
    if not isinstance(c[field], bool):
      raise ConfigError(f'config.mae.{field}={c[field]!r} must be True or False.')
  return shape


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds MAE from `config.mae` (patch_size, mask_ratio, norm_pix, the encoder's and the
  decoder's widths, depths, heads and MLP widths, position_embedding, class_token,
  eval_examples)."""
  height, width, channels = _check(config, info)
  c = config.mae
  p = int(c.patch_size)
  grid = (height // p, width // p)
  num_patches = grid[0] * grid[1]
  keep_count = num_kept(num_patches, c.mask_ratio)
  norm_pix = bool(c.norm_pix)
  dtype = models.DTYPES[config.model.dtype]
  encoder = vit.MAEEncoder(grid=grid, hidden_dim=c.hidden_dim, num_layers=c.num_layers,
                           num_heads=c.num_heads, mlp_dim=c.mlp_dim,
                           position_embedding=c.position_embedding, class_token=c.class_token,
                           dtype=dtype)
  decoder = vit.MAEDecoder(grid=grid, patch_dim=p * p * channels,
                           hidden_dim=c.decoder_hidden_dim, num_layers=c.decoder_num_layers,
                           num_heads=c.decoder_num_heads, mlp_dim=c.decoder_mlp_dim,
                           class_token=c.class_token, dtype=dtype)

  def grey(images):
    return images.astype(jnp.float32) / 255.0

  def encode(params, patches, keep, train):
    return encoder.apply({'params': params['encoder']}, patches, keep, train=train)

  def decode(params, tokens, restore, train):
    return decoder.apply({'params': params['decoder']}, tokens, restore, train=train)

  def init(rng, example):
    del example
    encoder_rng, decoder_rng = jax.random.split(rng)
    patches = jnp.zeros((2, num_patches, p * p * channels), jnp.float32)
    keep, restore, _ = random_masking(jax.random.key(0), 2, num_patches, keep_count)
    encoder_params = encoder.init(encoder_rng, patches, keep, train=False)['params']
    tokens = encoder.apply({'params': encoder_params}, patches, keep, train=False)
    decoder_params = decoder.init(decoder_rng, tokens, restore, train=False)['params']
    return {'encoder': encoder_params, 'decoder': decoder_params}, {}, {}

  def prepare(rng, batch, constants):
    """{'x' [B, H, W, C] grey levels, 'keep' [B, K], 'restore' [B, N], 'mask' [B, N]}."""
    del constants
    x = grey(batch['image'])
    keep, restore, mask = random_masking(rng, x.shape[0], num_patches, keep_count)
    return {'x': x, 'keep': keep, 'restore': restore, 'mask': mask}

  def loss(params, batch_stats, extra, inputs, step, rng):
    del step, rng
    patches = vit.patchify(inputs['x'], p)
    tokens = encode(params, patches, inputs['keep'], True)
    pred = decode(params, tokens, inputs['restore'], True)
    value = losses.mae_loss(pred, patches, inputs['mask'], norm_pix=norm_pix)
    return value, LossOutput(batch_stats=batch_stats, extra=extra, metrics={},
                             features=encoder.pool(tokens))

  def features(params, images, train):
    patches = vit.patchify(grey(images), p)
    return encoder.pool(encode(params, patches, None, train))

  def represent(params, batch_stats, batch, constants):
    """[B, D]: mean of the encoder's patch tokens over all N patches (no masking)."""
    del batch_stats, constants
    return features(params, batch['image'], False)

  def finetune(params, batch_stats, batch, rng):
    """`represent` in training mode, for the fine-tuning protocols."""
    del rng  # no dropout
    return features(params, batch['image'], True), batch_stats

  def reconstruct(params, x, key):
    """Per example: masked-patch pixel MSE and the loss; masked inputs and reconstructions."""
    patches = vit.patchify(x, p)
    keep, restore, mask = random_masking(key, x.shape[0], num_patches, keep_count)
    pred = decode(params, encode(params, patches, keep, False), restore, False)
    per_example = jax.vmap(lambda a, b, m: losses.mae_loss(a[None], b[None], m[None],
                                                           norm_pix=norm_pix))(pred, patches, mask)
    pixels = pred
    if norm_pix:  # back to grey levels with the true patch's statistics (the paper's figures)
      mean = jnp.mean(patches, axis=-1, keepdims=True)
      var = jnp.var(patches, axis=-1, keepdims=True)
      pixels = pred * jnp.sqrt(var + 1e-6) + mean
    error = jnp.mean(jnp.square(pixels - patches), axis=-1)  # [B, N]
    mse = jnp.sum(error * mask, axis=1) / jnp.sum(mask, axis=1)
    masked = mask[..., None] > 0
    masked_input = vit.unpatchify(jnp.where(masked, 0.5, patches), p, height, width)
    pasted = vit.unpatchify(jnp.where(masked, jnp.clip(pixels, 0.0, 1.0), patches), p, height,
                            width)
    return mse, per_example, masked_input, pasted

  jitted = {}

  def evaluate(context):
    """reconstruction_mse and mae_test_loss on the test split; the reconstruction grid."""
    state, test = context.state, context.dataset.test
    if not jitted:  # compiled once per run, outputs replicated for every process
      jitted['reconstruct'] = evaluation.replicated_jit(reconstruct, context.mesh)
    batch_size = context.config.eval.batch_size
    count = min(len(test), int(c.eval_examples))
    sums, first = np.zeros(2), None
    for start in range(0, count, batch_size):
      indices = np.arange(start, start + batch_size) % count  # wrap-around padding
      x = test.get_batch(indices)['image'].astype(np.float32) / 255.0
      key = jax.random.fold_in(jax.random.key(_EVAL_MASK_SEED), start)
      mse, loss_value, masked_input, pasted = jitted['reconstruct'](
          state.params, evaluation.global_array(x, context.mesh), key)
      keep = min(batch_size, count - start)
      sums += [np.sum(np.asarray(v, np.float64)[:keep]) for v in (mse, loss_value)]
      if first is None:
        shown = min(_GRID_IMAGES, keep)
        first = (x[:shown], np.asarray(masked_input)[:shown], np.asarray(pasted)[:shown])
    mse, test_loss = sums / count
    common.write_reconstructions(context, first)
    return {'reconstruction_mse': mse, 'mae_test_loss': test_loss}

  return Method(name='mae', views=(), features_dim=int(c.hidden_dim), init=init, loss=loss,
                encode=None, prepare=prepare, represent=represent, evaluate=evaluate,
                finetune=finetune)
