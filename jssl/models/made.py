"""MADE (Germain, Gregor, Murray & Larochelle, ICML 2015): an MLP made autoregressive by masks.

Every unit k of every layer gets a degree m(k): inputs the position of their pixel in an
ordering (1..D), hidden units an integer drawn uniformly in [min of the previous layer's
degrees, D - 1]. A hidden weight from unit k to unit k' is kept if m(k') >= m(k); an output
weight to output d only if m_input(d) > m(k) (strictly). So output d depends only on the
inputs before d in the ordering, and sigmoid(output d) is p(x_d | x_<d): the product over d is
a normalised distribution over binary images, whose log-likelihood is exact.

Masks are arguments of the network, not parameters: `made_masks(key, ...)` draws a set from a
key, so one parameter set is trained under many orderings and connectivities (the paper's
order- and connectivity-agnostic training) and evaluated as an ensemble of masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp


class MadeMasks(NamedTuple):
  """One MADE connectivity: the ordering and the 0/1 masks of every weight matrix."""
  order: jax.Array  # int32 [D]: order[i] is the pixel predicted i-th (a permutation of 0..D-1)
  hidden: tuple[jax.Array, ...]  # float32 [fan_in, fan_out] per hidden layer
  output: jax.Array  # float32 [H_last, D]
  direct: jax.Array  # float32 [D, D]: input j -> output d iff j comes before d


def made_masks(key: jax.Array, num_inputs: int, hidden_sizes: Sequence[int], *,
               natural_order: bool = False) -> MadeMasks:
  """Draws one MADE connectivity (jit-compatible: the sizes are static, the key may be traced).

  Args:
    key: where the ordering and the hidden degrees come from.
    num_inputs: D, the number of pixels.
    hidden_sizes: widths of the hidden layers (at least one).
    natural_order: the raster ordering 0..D-1 instead of a random permutation.

  Returns:
    The `MadeMasks`.
  """
  if not hidden_sizes:
    raise ValueError('MADE needs at least one hidden layer.')
  order_key, *layer_keys = jax.random.split(key, 1 + len(hidden_sizes))
  order = (jnp.arange(num_inputs) if natural_order
           else jax.random.permutation(order_key, num_inputs)).astype(jnp.int32)
  input_degrees = jnp.zeros(num_inputs, jnp.int32).at[order].set(
      jnp.arange(1, num_inputs + 1, dtype=jnp.int32))  # pixel order[i] has degree i + 1
  degrees = [input_degrees]
  for size, layer_key in zip(hidden_sizes, layer_keys):
    low = jnp.minimum(jnp.min(degrees[-1]), num_inputs - 1)
    degrees.append(jax.random.randint(layer_key, (size,), low, num_inputs))  # [low, D - 1]
  hidden = tuple((d_in[:, None] <= d_out[None, :]).astype(jnp.float32)
                 for d_in, d_out in zip(degrees[:-1], degrees[1:]))
  output = (degrees[-1][:, None] < input_degrees[None, :]).astype(jnp.float32)
  direct = (input_degrees[:, None] < input_degrees[None, :]).astype(jnp.float32)
  return MadeMasks(order, hidden, output, direct)


class MADE(nn.Module):
  """``x [B, D], masks -> (logits [B, D], last hidden layer [B, H])``.

  Masked dense layers with ReLU, a masked output layer and (``direct``) masked direct
  input-to-output weights, as in the paper's experiments.

  Attributes:
    num_inputs: D.
    hidden_sizes: widths of the hidden layers.
    direct: add the direct input-to-output connections.
  """
  num_inputs: int
  hidden_sizes: Sequence[int]
  direct: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, masks: MadeMasks) -> tuple[jax.Array, jax.Array]:
    x = x.astype(jnp.float32)
    if x.ndim != 2 or x.shape[1] != self.num_inputs:
      raise ValueError(f'MADE expects inputs [batch, {self.num_inputs}], got {x.shape}.')

    def masked(name, inputs, mask, features):
      kernel = self.param(f'{name}_kernel', nn.initializers.lecun_normal(),
                          (inputs.shape[-1], features))
      bias = self.param(f'{name}_bias', nn.initializers.zeros, (features,))
      return inputs @ (kernel * mask) + bias

    h = x
    for i, (size, mask) in enumerate(zip(self.hidden_sizes, masks.hidden)):
      h = nn.relu(masked(f'hidden_{i}', h, mask, size))
    logits = masked('output', h, masks.output, self.num_inputs)
    if self.direct:
      kernel = self.param('direct_kernel', nn.initializers.zeros,
                          (self.num_inputs, self.num_inputs))
      logits = logits + x @ (kernel * masks.direct)
    return logits, h
