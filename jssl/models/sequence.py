"""Networks over sequences and grids for the predictive-coding methods (CPC).

* `Conv1DEncoder`: a strided 1-D convolutional encoder of multichannel time series,
  ``[B, T, C] -> [B, T', D]`` with ``T' = ceil(T / prod(strides))`` (CPC's g_enc);
* `GRUContext`: a causal GRU summarising the encodings up to each step (CPC's g_ar);
* `RowCausalContext`: a stack of convolutions over a patch grid that see only the rows above
  and the current row (CPC's image context network).

None of them uses BatchNorm: padded steps would enter its statistics, and CPC's networks
normalise per position (LayerNorm) or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def step_mask(lengths: jax.Array, steps: int) -> jax.Array:
  """bool [B, steps]: True at the first lengths[b] steps of each row."""
  return jnp.arange(steps)[None, :] < lengths[:, None]


def downsampled_lengths(lengths: jax.Array, strides: Sequence[int]) -> jax.Array:
  """The valid lengths after 'SAME' convolutions of the given strides: ceil per layer."""
  for stride in strides:
    lengths = (lengths + stride - 1) // stride
  return lengths


class Conv1DEncoder(nn.Module):
  """Strided 1-D convolutions, each followed by LayerNorm over channels and ReLU.

  Steps past a series' length are zeroed after every layer, so a series' encoding does not
  depend on how much padding follows it.

  Attributes:
    widths: output channels of each layer; the last is D.
    kernel_sizes: kernel size of each layer.
    strides: stride of each layer (their product is the encoder's downsampling).
    dtype: computation dtype; params are float32.
  """
  widths: Sequence[int] = (64, 64, 64)
  kernel_sizes: Sequence[int] = (4, 4, 3)
  strides: Sequence[int] = (2, 1, 1)
  dtype: Any = jnp.float32

  @property
  def features_dim(self) -> int:
    return self.widths[-1]

  @nn.compact
  def __call__(self, series: jax.Array, lengths: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Encodes ``series`` float [B, T, C] whose rows are ``lengths`` int [B] steps long.

    Returns:
      (z [B, T', D] float32, lengths' [B] int32): encodings, zero past each new length.
    """
    if not len(self.widths) == len(self.kernel_sizes) == len(self.strides):
      raise ValueError('Conv1DEncoder: widths, kernel_sizes and strides need one entry per '
                       f'layer; got {self.widths}, {self.kernel_sizes}, {self.strides}.')
    x = series.astype(self.dtype)
    lengths = lengths.astype(jnp.int32)
    x = x * step_mask(lengths, x.shape[1])[..., None]
    for width, kernel, stride in zip(self.widths, self.kernel_sizes, self.strides):
      x = nn.Conv(width, (kernel,), strides=(stride,), padding='SAME', dtype=self.dtype)(x)
      x = nn.relu(nn.LayerNorm(dtype=self.dtype)(x))
      lengths = downsampled_lengths(lengths, (stride,))
      x = x * step_mask(lengths, x.shape[1])[..., None].astype(x.dtype)
    return x.astype(jnp.float32), lengths


class GRUContext(nn.Module):
  """``z [B, T, D] -> c [B, T, hidden_dim]``: c_t summarises z_1 ... z_t (a causal GRU)."""
  hidden_dim: int = 64

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    return nn.RNN(nn.GRUCell(self.hidden_dim))(z)


class RowCausalContext(nn.Module):
  """Context over a grid of patch encodings ``[B, R, C, D] -> [B, R, C, hidden_dim]``.

  Each layer is a ``kernel_size x kernel_size`` convolution whose input is padded with
  ``kernel_size - 1`` rows above and none below, so output row r reads rows r - k + 1 ... r
  only: with L layers the context at row r has seen every row above it within L (k - 1) rows
  and never a row below (the rows it predicts). Layers after the first are residual.

  Attributes:
    hidden_dim: channels of every layer.
    num_layers: L.
    kernel_size: k (odd, >= 1).
  """
  hidden_dim: int = 64
  num_layers: int = 2
  kernel_size: int = 3

  @nn.compact
  def __call__(self, grid: jax.Array) -> jax.Array:
    k, half = self.kernel_size, self.kernel_size // 2
    x = grid
    for layer in range(self.num_layers):
      padded = jnp.pad(x, ((0, 0), (k - 1, 0), (half, half), (0, 0)))
      y = nn.relu(nn.Conv(self.hidden_dim, (k, k), padding='VALID')(padded))
      x = y if layer == 0 else x + y
    return x
