"""MLP heads: SimCLR projection heads, BYOL/SimSiam projectors and predictors.

``MLPHead((2048,), 128)`` is SimCLR v1's projection head, ``MLPHead((2048, 2048), 128)`` SimCLR
v2's, ``MLPHead((4096,), 256)`` BYOL's projector and predictor.

Dense layers followed by BatchNorm have no bias (BN's own bias makes it redundant), so every
``bias`` leaf is a BN bias or the last Dense bias; both are excluded from weight decay by
``jssl.models.weight_decay_mask``. BatchNorm has no ``axis_name``: under ``jax.jit`` over globally
sharded arrays its statistics are over the global batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class MLPHead(nn.Module):
  """``(Dense -> BN -> ReLU) x len(hidden_dims) -> Dense [-> BN]``.

  Attributes:
    hidden_dims: width of each hidden layer; ``()`` gives a single linear layer.
    output_dim: size of the output.
    use_bn: BatchNorm after each hidden Dense.
    last_bn: BatchNorm (with scale and bias) after the final Dense, as in SimCLR v2 / MoCo v3.
    dtype: computation dtype; params are float32 and the output is float32.
  """
  hidden_dims: Sequence[int]
  output_dim: int
  use_bn: bool = True
  last_bn: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    """Applies the head.

    Args:
      x: inputs ``[B, D]``.
      train: use batch statistics in BatchNorm and update the running averages (the
        ``batch_stats`` collection must then be mutable); otherwise use the running averages.

    Returns:
      ``[B, output_dim]``, float32.
    """

    def batch_norm(name):
      return nn.BatchNorm(
          use_running_average=not train,
          momentum=0.9,
          epsilon=1e-5,
          dtype=self.dtype,
          param_dtype=jnp.float32,
          name=name)

    x = jnp.asarray(x).astype(self.dtype)
    for i, width in enumerate(self.hidden_dims):
      x = nn.Dense(
          width, use_bias=not self.use_bn, dtype=self.dtype, param_dtype=jnp.float32,
          name=f'dense_{i}')(x)
      if self.use_bn:
        x = batch_norm(f'bn_{i}')(x)
      x = nn.relu(x)
    x = nn.Dense(
        self.output_dim, use_bias=not self.last_bn, dtype=self.dtype, param_dtype=jnp.float32,
        name='dense_out')(x)
    if self.last_bn:
      x = batch_norm('bn_out')(x)
    return x.astype(jnp.float32)
