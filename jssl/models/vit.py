"""A small Vision Transformer (Dosovitskiy et al., ICLR 2021) and the asymmetric encoder /
decoder of masked autoencoders (He et al., "Masked Autoencoders Are Scalable Vision Learners",
CVPR 2022), on the blocks of `jssl.models.transformer` (pre-LN, as ViT: `TransformerBlock` with
``pre_ln=True``, a final LayerNorm after the last block).

Images become sequences of patches: `patchify` cuts ``[B, H, W, C]`` into ``N = (H / p)(W / p)``
non-overlapping ``p x p`` patches in raster order, each flattened to ``P = p * p * C`` values
(row, column, channel); `unpatchify` is its inverse. A patch embedding is one Dense layer on
the flattened patch (a stride-p convolution, as ViT's). Positions are either the fixed 2-D
sine-cosine embedding MAE uses (`sincos_2d_embedding`: half the channels encode the row, half
the column) or a learned table (N(0, 0.02)). An optional class token (learned, with no
position) is prepended.

`MAEEncoder` embeds only the patches it is given by index (``keep [B, K]``; every patch when
None), so masked patches never enter it: gathering happens before the embedding. `MAEDecoder`
(narrower, fewer blocks) maps the encoder's tokens to its own width, appends a learned mask
token for each of the ``N - K`` removed patches, puts every token back at its patch's place
(``restore [B, N]``, the inverse of the shuffle that chose ``keep``), adds its own fixed
positions, and predicts the ``P`` pixel values of every patch.

Attention sees every token (no padding), so the mask of the blocks is all True.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jssl.models.transformer import TransformerBlock

POSITION_EMBEDDINGS = ('sincos', 'learned')
_INIT = nn.initializers.normal(stddev=0.02)


def patchify(images: jax.Array, patch_size: int) -> jax.Array:
  """Non-overlapping square patches in raster order.

  Args:
    images: ``[B, H, W, C]``; H and W multiples of ``patch_size``.
    patch_size: p.

  Returns:
    ``[B, N, p * p * C]`` with ``N = (H / p) * (W / p)``; patch ``n = i * (W / p) + j`` holds
    ``images[:, i*p:(i+1)*p, j*p:(j+1)*p, :]`` flattened in (row, column, channel) order.
  """
  batch, height, width, channels = images.shape
  p = patch_size
  if height % p or width % p:
    raise ValueError(f'patchify: patch size {p} does not divide the {height}x{width} images.')
  x = images.reshape(batch, height // p, p, width // p, p, channels)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(batch, (height // p) * (width // p), p * p * channels)


def unpatchify(patches: jax.Array, patch_size: int, height: int, width: int) -> jax.Array:
  """Inverse of `patchify`: ``[B, N, p * p * C] -> [B, H, W, C]``."""
  batch, num_patches, patch_dim = patches.shape
  p = patch_size
  rows, columns = height // p, width // p
  channels = patch_dim // (p * p)
  if rows * columns != num_patches or channels * p * p != patch_dim:
    raise ValueError(f'unpatchify: {num_patches} patches of {patch_dim} values do not make '
                     f'{height}x{width} images of {p}x{p} patches.')
  x = patches.reshape(batch, rows, columns, p, p, channels)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(batch, height, width, channels)


def sincos_1d_embedding(dim: int, positions: np.ndarray) -> np.ndarray:
  """Transformer sine-cosine embedding of integer positions: ``[M] -> [M, dim]`` float32,
  ``[sin(pos * w_k), cos(pos * w_k)]`` with ``w_k = 10000^(-k / (dim / 2))``; dim even."""
  if dim % 2:
    raise ValueError(f'sincos_1d_embedding: dim {dim} must be even.')
  omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2))
  angles = np.asarray(positions, np.float64).reshape(-1)[:, None] * omega[None]
  return np.concatenate([np.sin(angles), np.cos(angles)], axis=1).astype(np.float32)


def sincos_2d_embedding(dim: int, rows: int, columns: int) -> np.ndarray:
  """Fixed 2-D positions of a ``rows x columns`` patch grid in raster order (MAE's):
  ``[rows * columns, dim]`` float32, the first half of the channels the row's 1-D embedding,
  the second half the column's; dim a multiple of 4."""
  if dim % 4:
    raise ValueError(f'sincos_2d_embedding: dim {dim} must be a multiple of 4.')
  row, column = np.meshgrid(np.arange(rows), np.arange(columns), indexing='ij')
  return np.concatenate([sincos_1d_embedding(dim // 2, row), sincos_1d_embedding(dim // 2, column)],
                        axis=1)


def _positions(module: nn.Module, kind: str, dim: int, rows: int, columns: int) -> jax.Array:
  """[N, dim] position embeddings of `kind` ('sincos' fixed, 'learned' a parameter)."""
  if kind == 'sincos':
    return jnp.asarray(sincos_2d_embedding(dim, rows, columns))
  if kind == 'learned':
    return module.param('position', _INIT, (rows * columns, dim), jnp.float32)
  raise ValueError(f'position embedding {kind!r} is unknown; choose one of {POSITION_EMBEDDINGS}.')


def _blocks(x: jax.Array, *, num_layers: int, hidden_dim: int, num_heads: int, mlp_dim: int,
            dtype: Any, train: bool) -> jax.Array:
  """`num_layers` pre-LN `TransformerBlock`s (no dropout, as MAE) and the final LayerNorm."""
  mask = jnp.ones((x.shape[0], 1, x.shape[1], x.shape[1]), bool)
  for i in range(num_layers):
    x = TransformerBlock(hidden_dim=hidden_dim, num_heads=num_heads, mlp_dim=mlp_dim,
                         dropout_rate=0.0, pre_ln=True, dtype=dtype, name=f'block{i}')(
                             x, mask, train=train)
  return nn.LayerNorm(epsilon=1e-6, dtype=jnp.float32, param_dtype=jnp.float32,
                      name='ln_final')(x)


class MAEEncoder(nn.Module):
  """ViT encoder of the visible patches.

  Attributes:
    grid: (rows, columns) of the patch grid (N = rows * columns patches).
    hidden_dim: token width D (a multiple of 4 for 'sincos' positions).
    num_layers: Transformer blocks.
    num_heads: attention heads (D must be divisible by it).
    mlp_dim: hidden width of the blocks' MLPs.
    position_embedding: 'sincos' (fixed 2-D, MAE's) or 'learned'.
    class_token: prepend a learned class token (it attends and is attended to; `pool`
      leaves it out).
    dtype: computation dtype of the Dense layers.
  """
  grid: tuple[int, int]
  hidden_dim: int
  num_layers: int
  num_heads: int
  mlp_dim: int
  position_embedding: str = 'sincos'
  class_token: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, patches, keep=None, *, train: bool):
    """Encodes the patches `keep` picks.

    Args:
      patches: ``[B, N, P]`` every patch of the images (`patchify`).
      keep: int ``[B, K]`` indices of the visible patches of each example, or None for all N.
      train: training mode (nothing differs without dropout; kept for the contract).

    Returns:
      float32 ``[B, T, D]`` after the final LayerNorm: T = K (or N) patch tokens in the order
      of `keep`, preceded by the class token when `class_token` (T = K + 1).
    """
    rows, columns = self.grid
    if patches.shape[1] != rows * columns:
      raise ValueError(f'MAEEncoder: {patches.shape[1]} patches for a {rows}x{columns} grid.')
    positions = _positions(self, self.position_embedding, self.hidden_dim, rows, columns)
    batch = patches.shape[0]
    if keep is None:
      keep = jnp.broadcast_to(jnp.arange(rows * columns, dtype=jnp.int32), (batch, rows * columns))
    visible = jnp.take_along_axis(patches, keep[..., None], axis=1)  # [B, K, P]: before embedding
    x = nn.Dense(self.hidden_dim, dtype=self.dtype, param_dtype=jnp.float32,
                 name='patch_embedding')(visible).astype(jnp.float32)
    x = x + positions[keep]
    if self.class_token:
      cls = self.param('cls', nn.initializers.zeros, (1, 1, self.hidden_dim), jnp.float32)
      x = jnp.concatenate([jnp.broadcast_to(cls, (batch, 1, self.hidden_dim)), x], axis=1)
    return _blocks(x, num_layers=self.num_layers, hidden_dim=self.hidden_dim,
                   num_heads=self.num_heads, mlp_dim=self.mlp_dim, dtype=self.dtype, train=train)

  def pool(self, tokens):
    """``[B, T, D] -> [B, D]``: the mean of the patch tokens (the class token left out)."""
    return jnp.mean(tokens[:, 1:] if self.class_token else tokens, axis=1)


class MAEDecoder(nn.Module):
  """MAE's light decoder: encoder tokens + mask tokens, unshuffled, to every patch's pixels.

  Attributes:
    grid: (rows, columns) of the patch grid.
    patch_dim: P, the values predicted per patch.
    hidden_dim: decoder width (a multiple of 4; its positions are always the fixed 'sincos').
    num_layers: Transformer blocks.
    num_heads: attention heads.
    mlp_dim: hidden width of the blocks' MLPs.
    class_token: the encoder's tokens start with a class token (kept through the blocks,
      dropped from the output).
    dtype: computation dtype of the Dense layers.
  """
  grid: tuple[int, int]
  patch_dim: int
  hidden_dim: int
  num_layers: int
  num_heads: int
  mlp_dim: int
  class_token: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, tokens, restore, *, train: bool):
    """Predicts every patch.

    Args:
      tokens: ``[B, T, D_enc]`` what `MAEEncoder` returned for the visible patches (in the
        shuffled order of `keep`, after the class token if any).
      restore: int ``[B, N]``: the token of patch n is number ``restore[b, n]`` of the shuffled
        sequence (visible tokens first, then the mask tokens); the inverse of the shuffle.
      train: training mode.

    Returns:
      float32 ``[B, N, P]`` predictions in the original patch order.
    """
    rows, columns = self.grid
    num_patches = rows * columns
    x = nn.Dense(self.hidden_dim, dtype=self.dtype, param_dtype=jnp.float32,
                 name='embedding')(tokens).astype(jnp.float32)
    cls, x = (x[:, :1], x[:, 1:]) if self.class_token else (None, x)
    batch, visible = x.shape[:2]
    mask_token = self.param('mask_token', _INIT, (1, 1, self.hidden_dim), jnp.float32)
    x = jnp.concatenate(
        [x, jnp.broadcast_to(mask_token, (batch, num_patches - visible, self.hidden_dim))], axis=1)
    x = jnp.take_along_axis(x, restore[..., None], axis=1)  # [B, N, D]: back in patch order
    x = x + jnp.asarray(sincos_2d_embedding(self.hidden_dim, rows, columns))
    if cls is not None:
      x = jnp.concatenate([cls, x], axis=1)
    x = _blocks(x, num_layers=self.num_layers, hidden_dim=self.hidden_dim,
                num_heads=self.num_heads, mlp_dim=self.mlp_dim, dtype=self.dtype, train=train)
    if cls is not None:
      x = x[:, 1:]
    return nn.Dense(self.patch_dim, dtype=self.dtype, param_dtype=jnp.float32,
                    name='prediction')(x).astype(jnp.float32)
