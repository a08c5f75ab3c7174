"""Graph convolutional network (Kipf & Welling, 2017) on a padded, static-shaped graph.

A graph is given as node features ``[N, F]`` and an edge list ``senders [E]``, ``receivers [E]``
(int32 node indices; an edge ``s -> r`` carries a message from s to r). An undirected graph lists
each edge in both directions. Padding, so that shapes stay fixed under ``jit``: pad the node
arrays with nodes that nothing refers to, and either give padding edges ``edge_mask=False`` or
point them at a padding node; a padding node's output is computed but meaningless, so losses
and probes must ignore it (node masks).

Message passing uses ``jax.ops.segment_sum`` and a gather, not jraph: jraph is archived
(no longer maintained) and would be a new dependency for two lines of code. ``segment_sum`` is
an XLA scatter-add, which ``jit`` partitions across devices like any other op, so the node or
edge arrays may be sharded over the ``('data',)`` mesh and the result equals the single-device one.

Layer (the paper's eq. 2): ``H' = D^-1/2 (A + I) D^-1/2 H W + b`` with ``D_ii = sum_j (A + I)_ij``,
computed as ``X W`` first (cheaper when F > features) then aggregated along the edges with
`gcn_norm`'s weights. Kernels use Glorot-uniform initialisation, biases zero, as the paper and
DGI (Velickovic et al., 2019). Parameters are float32; the ``X W`` product is computed in
``dtype``; the aggregation and the outputs are float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = ('prelu', 'relu')


def gcn_norm(senders, receivers, num_nodes: int, edge_mask=None):
  """Adds self-loops and the symmetric GCN normalisation ``D^-1/2 (A + I) D^-1/2``.

  ``A[r, s]`` is the number of (unmasked) edges ``s -> r``; ``D`` is the diagonal of the row
  sums of ``A + I``, i.e. each node's in-degree plus one. For an undirected graph (every edge
  given in both directions) in- and out-degree agree and this is the paper's normalisation.

  Args:
    senders: int ``[E]``, source node of each edge, in ``[0, num_nodes)``.
    receivers: int ``[E]``, destination node of each edge, in ``[0, num_nodes)``.
    num_nodes: N (static).
    edge_mask: optional bool ``[E]``; False marks a padding edge, which then gets weight 0 and
      does not count in any degree.

  Returns:
    ``(senders, receivers, weights)`` of length ``E + N``: the input edges followed by one
    self-loop per node, and float32 weights ``1 / sqrt(d_s d_r)`` (0 for masked edges), so that
    ``out[r] = sum_e weights[e] * x[senders[e]]`` over edges with ``receivers[e] == r`` is
    ``(D^-1/2 (A + I) D^-1/2 x)[r]``.
  """
  senders = jnp.asarray(senders, jnp.int32)
  receivers = jnp.asarray(receivers, jnp.int32)
  if senders.ndim != 1 or senders.shape != receivers.shape:
    raise ValueError(f'senders and receivers must be 1-D and of equal length, got shapes '
                     f'{senders.shape} and {receivers.shape}.')
  nodes = jnp.arange(num_nodes, dtype=jnp.int32)
  edge_weight = (jnp.ones(senders.shape, jnp.float32) if edge_mask is None else
                 jnp.asarray(edge_mask, bool).astype(jnp.float32))
  senders = jnp.concatenate([senders, nodes])
  receivers = jnp.concatenate([receivers, nodes])
  edge_weight = jnp.concatenate([edge_weight, jnp.ones((num_nodes,), jnp.float32)])
  degree = jax.ops.segment_sum(edge_weight, receivers, num_segments=num_nodes)  # >= 1.
  inv_sqrt = jax.lax.rsqrt(degree)
  return senders, receivers, edge_weight * inv_sqrt[senders] * inv_sqrt[receivers]


class GCNLayer(nn.Module):
  """One graph convolution: ``x W`` aggregated with `gcn_norm`'s weights, plus a bias.

  Attributes:
    features: output width.
    use_bias: add a learned bias after aggregation.
    dtype: computation dtype of ``x W``; the aggregation and output are float32.
  """
  features: int
  use_bias: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, senders, receivers, weights):
    """Applies the layer.

    Args:
      x: node features ``[N, F]``.
      senders: int ``[E']`` edge sources, self-loops included (from `gcn_norm`).
      receivers: int ``[E']`` edge destinations.
      weights: float ``[E']`` edge weights from `gcn_norm`.

    Returns:
      float32 ``[N, features]``.
    """
    num_nodes = x.shape[0]
    xw = nn.Dense(self.features, use_bias=False, dtype=self.dtype, param_dtype=jnp.float32,
                  kernel_init=nn.initializers.glorot_uniform(), name='dense')(x)
    messages = xw.astype(jnp.float32)[senders] * weights[:, None]
    out = jax.ops.segment_sum(messages, receivers, num_segments=num_nodes)
    if self.use_bias:
      out = out + self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
    return out


class PReLU(nn.Module):
  """``max(x, 0) + a * min(x, 0)`` with a learned slope ``a`` per channel (He et al., 2015).

  Attributes:
    init_slope: initial value of every slope (0.25, the paper's and PyTorch's default).
  """
  init_slope: float = 0.25

  @nn.compact
  def __call__(self, x):
    """``[..., C] -> [..., C]``, float32."""
    slope = self.param('negative_slope', nn.initializers.constant(self.init_slope),
                       (x.shape[-1],), jnp.float32)
    x = jnp.asarray(x, jnp.float32)
    return jnp.where(x >= 0, x, slope * x)


class GCN(nn.Module):
  """Stacked `GCNLayer` s, each followed by the activation (DGI's encoder with the defaults).

  DGI (Velickovic et al., 2019) uses one 512-wide layer with PReLU on transductive graphs. The
  activation follows every layer, the last included, since the output is a representation.

  Attributes:
    hidden_dims: width of each layer; the last is ``features_dim``.
    activation: 'prelu' (a learned slope per channel, initialised to 0.25) or 'relu'.
    dtype: computation dtype; params and outputs are float32.
  """
  hidden_dims: Sequence[int] = (512,)
  activation: str = 'prelu'
  dtype: Any = jnp.float32

  @property
  def features_dim(self) -> int:
    """H, the width of each node's representation."""
    return self.hidden_dims[-1]

  @nn.compact
  def __call__(self, node_features, senders, receivers, edge_mask=None):
    """Encodes the nodes of one (padded) graph.

    Args:
      node_features: ``[N, F]``.
      senders: int ``[E]`` edge sources (both directions for an undirected graph, no
        self-loops: they are added here).
      receivers: int ``[E]`` edge destinations.
      edge_mask: optional bool ``[E]``, False for padding edges.

    Returns:
      float32 ``[N, hidden_dims[-1]]``.
    """
    if self.activation not in ACTIVATIONS:
      raise ValueError(f'Unknown GCN activation {self.activation!r}; valid activations are '
                       f'{list(ACTIVATIONS)}.')
    if not self.hidden_dims or any(not isinstance(h, int) or h < 1 for h in self.hidden_dims):
      raise ValueError(f'GCN hidden_dims must be a non-empty sequence of positive ints, got '
                       f'{self.hidden_dims!r}.')
    if node_features.ndim != 2:
      raise ValueError(f'node_features must be [num_nodes, features], got shape '
                       f'{node_features.shape}.')
    senders, receivers, weights = gcn_norm(senders, receivers, node_features.shape[0], edge_mask)
    x = node_features
    for i, width in enumerate(self.hidden_dims):
      x = GCNLayer(width, dtype=self.dtype, name=f'gcn_{i}')(x, senders, receivers, weights)
      x = PReLU(name=f'prelu_{i}')(x) if self.activation == 'prelu' else nn.relu(x)
    return x
