"""Contrastive losses for large batches, computed in blocks without the N x N similarity matrix.

`nt_xent` and `info_nce` in `jssl.losses.contrastive` build the full matrix of logits (2N x 2N
for SimCLR, N x K for MoCo), and autodiff keeps it, and the softmax of the same size, for the
backward pass. At a global batch of 65536 that is 64 GiB per float32 copy. Here the loss is
evaluated one [block_size, block_size] tile of similarities at a time, as in FlashAttention
(Dao et al. 2022) and in the chunked contrastive losses of large-batch CLIP training:

- forward: a `lax.scan` over blocks of rows, inside it a `lax.scan` over blocks of columns
  that keeps a running max and a running sum of exponentials per row (the online log-sum-exp
  of Milakov & Gimelshein 2018), so each row's log-sum-exp is exact and no tile outlives its
  step;
- backward (`jax.custom_vjp`): the same two scans recompute every tile from the saved
  L2-normalised inputs and the per-row log-sum-exps; the softmax tile times the cotangent
  gives the row gradient (accumulated in the inner scan) and the column gradient (summed
  over row blocks).

Memory is O(block_size^2 + N D) (the tile plus the inputs, their gradients and the per-row
log-sum-exps) instead of O(N^2); time is the same O(N^2 D) as the dense loss, with one extra
similarity pass in the backward. The L2 normalisation, the temperature and the positive logits
are ordinary JAX outside the custom_vjp core, so autodiff carries gradients through them.

Under `jax.jit` with the batch sharded over a ('data',) mesh the functions see the global
arrays, as the dense losses do, and give the same loss and gradients as on one device; XLA
then gathers the batch and every device computes every tile. Passing that `mesh` instead runs
a `jax.shard_map` in which each device computes only its own rows against the all-gathered
batch (1/devices of the work) and the column gradients are reduce-scattered back.
"""

from __future__ import annotations

import functools
import numbers

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jssl.losses import contrastive
from jssl.losses.contrastive import l2_normalize

# As in contrastive.py: masked logits are a large negative, never -inf (no inf - inf).
_LARGE_NEGATIVE = contrastive._LARGE_NEGATIVE  # pylint: disable=protected-access
_at_least_float32 = contrastive._at_least_float32  # pylint: disable=protected-access


def _check_block_size(name: str, block_size: int) -> None:
  if (not isinstance(block_size, numbers.Integral) or isinstance(block_size, bool)
      or block_size < 1):
    raise ValueError(f'{name} expects block_size to be a positive integer (rows and columns of '
                     f'one tile of similarities, e.g. 1024); got {block_size!r}')


def _to_blocks(x: jax.Array, block: int, fill: int = 0) -> jax.Array:
  """[M, ...] -> [ceil(M / block), block, ...], padding the last block with `fill`."""
  num_blocks = -(-x.shape[0] // block)
  padding = num_blocks * block - x.shape[0]
  x = jnp.pad(x, [(0, padding)] + [(0, 0)] * (x.ndim - 1), constant_values=fill)
  return x.reshape((num_blocks, block) + x.shape[1:])


def _block_sizes(a, b, block_size):
  return min(block_size, a.shape[0]), min(block_size, b.shape[0])


def _tile(a_block, b_block, excluded_block, col_start, num_cols):
  """Logits a_r . b_c of one tile [Br, Bc], invalid entries set to a large negative.

  Invalid: padding columns (index >= num_cols) and each row's excluded column (its own
  sample in NT-Xent; -1 excludes none). Returns (logits, valid).
  """
  logits = a_block @ b_block.T
  cols = col_start + jnp.arange(b_block.shape[0])
  valid = (cols[None, :] < num_cols) & (excluded_block[:, None] != cols[None, :])
  return jnp.where(valid, logits, _LARGE_NEGATIVE), valid


def _row_logsumexp_forward(a, b, excluded, block_size):
  num_rows, num_cols = a.shape[0], b.shape[0]
  row_block, col_block = _block_sizes(a, b, block_size)
  a_blocks, b_blocks = _to_blocks(a, row_block), _to_blocks(b, col_block)
  excluded_blocks = _to_blocks(excluded, row_block, fill=-1)
  col_starts = jnp.arange(b_blocks.shape[0]) * col_block

  def row_step(_, row):
    a_block, excluded_block = row

    def col_step(carry, col):
      running_max, running_sum = carry
      b_block, col_start = col
      logits, valid = _tile(a_block, b_block, excluded_block, col_start, num_cols)
      # The max is a constant shift, not part of the function: custom_vjp gives its gradient.
      new_max = jnp.maximum(running_max, jnp.max(logits, axis=-1))
      terms = jnp.where(valid, jnp.exp(logits - new_max[:, None]), 0.0)
      new_sum = running_sum * jnp.exp(running_max - new_max) + jnp.sum(terms, axis=-1)
      return (new_max, new_sum), None

    # *_like keeps a's device variance inside jax.shard_map (scan carries must match it).
    init = (jnp.full_like(a_block[:, 0], _LARGE_NEGATIVE), jnp.zeros_like(a_block[:, 0]))
    (row_max, row_sum), _ = jax.lax.scan(col_step, init, (b_blocks, col_starts))
    # Every real row has at least one valid column, so row_sum >= 1 and the log is finite;
    # padding rows (zeros) are finite too and are cut off below.
    return None, row_max + jnp.log(row_sum)

  _, lse = jax.lax.scan(row_step, None, (a_blocks, excluded_blocks))
  return lse.reshape(-1)[:num_rows]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _row_logsumexp(a, b, excluded, block_size):
  """lse_i = log sum_j exp(a_i . b_j) over the K rows j of b but j = excluded[i].

  Args:
    a: [M, D] rows (already scaled by 1 / temperature).
    b: [K, D] columns.
    excluded: [M] int32, the column left out of row i's sum (-1: none).
    block_size: rows and columns of one tile.

  Returns:
    [M] log-sum-exps, with O(block_size^2) temporaries. Every row must keep a column.
  """
  return _row_logsumexp_forward(a, b, excluded, block_size)


def _row_logsumexp_fwd(a, b, excluded, block_size):
  lse = _row_logsumexp_forward(a, b, excluded, block_size)
  return lse, (a, b, excluded, lse)


def _row_logsumexp_bwd(block_size, residuals, cotangent):
  """d lse_i / d a_i = sum_j P_ij b_j and d lse_i / d b_j = P_ij a_i, P = softmax rows."""
  a, b, excluded, lse = residuals
  num_rows, num_cols = a.shape[0], b.shape[0]
  row_block, col_block = _block_sizes(a, b, block_size)
  a_blocks, b_blocks = _to_blocks(a, row_block), _to_blocks(b, col_block)
  excluded_blocks = _to_blocks(excluded, row_block, fill=-1)
  lse_blocks = _to_blocks(lse, row_block)
  # Padding rows get a zero cotangent, so they add nothing to either gradient.
  cotangent_blocks = _to_blocks(cotangent.astype(a.dtype), row_block)
  col_starts = jnp.arange(b_blocks.shape[0]) * col_block

  def row_step(grad_b_blocks, row):
    a_block, excluded_block, lse_block, cotangent_block = row

    def col_step(grad_a_block, col):
      b_block, col_start = col
      logits, valid = _tile(a_block, b_block, excluded_block, col_start, num_cols)
      # logits <= lse on valid entries, so exp never overflows.
      weights = jnp.where(valid, jnp.exp(logits - lse_block[:, None]), 0.0)
      weights = weights * cotangent_block[:, None]  # [Br, Bc]
      return grad_a_block + weights @ b_block, weights.T @ a_block

    grad_a_block, grad_b_from_rows = jax.lax.scan(
        col_step, jnp.zeros_like(a_block), (b_blocks, col_starts))
    return grad_b_blocks + grad_b_from_rows, grad_a_block

  grad_b_blocks, grad_a_blocks = jax.lax.scan(
      row_step, jnp.zeros_like(b_blocks),
      (a_blocks, excluded_blocks, lse_blocks, cotangent_blocks))
  grad_a = grad_a_blocks.reshape(-1, a.shape[1])[:num_rows]
  grad_b = grad_b_blocks.reshape(-1, b.shape[1])[:num_cols]
  return grad_a, grad_b, None


_row_logsumexp.defvjp(_row_logsumexp_fwd, _row_logsumexp_bwd)


def _check_mesh(name: str, mesh: Mesh, axis_name: str, batch: int) -> int:
  """Devices along `axis_name` of `mesh`; raises ValueError unless they divide the batch."""
  if axis_name not in mesh.shape:
    raise ValueError(f'{name}: mesh axes {tuple(mesh.shape)} have no {axis_name!r} axis; pass '
                     f'axis_name= one of them.')
  devices = mesh.shape[axis_name]
  if batch % devices:
    raise ValueError(f'{name}: the batch of {batch} rows does not split over the {devices} '
                     f'devices of mesh axis {axis_name!r}; use a batch that is a multiple of '
                     f'{devices}, or mesh=None.')
  return devices


def _nt_xent_sum(z1, z2, z1_all, z2_all, first_row, temperature, block_size):
  """Sum of lse - positive over the anchors z1, z2 (rows first_row.. of z1_all and z2_all).

  All inputs are L2-normalised; z1_all, z2_all are the whole batch [N, D], the columns.
  """
  n = z1_all.shape[0]
  rows = first_row + jnp.arange(z1.shape[0])
  excluded = jnp.concatenate([rows, n + rows])  # each anchor's own column
  z_all = jnp.concatenate([z1_all, z2_all])
  lse = _row_logsumexp(jnp.concatenate([z1, z2]) / temperature, z_all, excluded, block_size)
  positive = jnp.sum(z1 * z2, axis=-1) / temperature  # anchor i and i + N alike
  return jnp.sum(lse) - 2 * jnp.sum(positive)


def nt_xent_blockwise(
    z1: jax.Array,
    z2: jax.Array,
    *,
    temperature: float,
    block_size: int,
    mesh: Mesh | None = None,
    axis_name: str = 'data',
) -> jax.Array:
  """NT-Xent of SimCLR (Chen et al. 2020), computed in blocks: equal to `nt_xent`.

  The 2N projections are L2-normalised; each of the 2N anchors is classified against the other
  2N - 1 samples by cosine similarity / temperature, its positive being the other view of the
  same image. Each anchor's log-sum-exp over the other 2N - 1 samples is accumulated over tiles
  of [block_size, block_size] similarities (forward and backward), so memory is
  O(block_size^2 + N D) instead of the dense loss's O(N^2); N need not be a multiple of
  block_size (the last block is padded and masked).

  Args:
    z1: [N, D] projections of the first view (not normalised).
    z2: [N, D] projections of the second view; row i is the same image as z1's row i.
    temperature: softmax temperature (> 0), e.g. 0.1 - 0.5.
    block_size: rows and columns of one tile of similarities (>= 1), e.g. 1024; a block_size
      >= 2N is one tile, the dense computation.
    mesh: None computes on global arrays: under `jax.jit` with z1, z2 sharded the result is
      right, but XLA gathers the batch and every device computes every tile. With the mesh
      the batch is sharded over, a `jax.shard_map` lets each device compute only its own
      anchors' rows against the all-gathered batch (1/devices of the work); the column
      gradients are reduce-scattered back. N must be a multiple of the devices on axis_name.
    axis_name: the mesh axis the batch is sharded over.

  Returns:
    Scalar loss (at least float32) averaged over all 2N anchors.
  """
  if z1.ndim != 2 or z1.shape != z2.shape:
    raise ValueError(
        f'nt_xent_blockwise expects z1, z2 of equal shape [N, D]; got {z1.shape}, {z2.shape}')
  _check_block_size('nt_xent_blockwise', block_size)
  n = z1.shape[0]
  z1, z2 = _at_least_float32(z1), _at_least_float32(z2)
  if mesh is None:
    z1, z2 = l2_normalize(z1), l2_normalize(z2)
    return _nt_xent_sum(z1, z2, z1, z2, 0, temperature, block_size) / (2 * n)
  _check_mesh('nt_xent_blockwise', mesh, axis_name, n)

  def per_device(z1, z2):  # this device's [N / devices, D] rows of each view
    z1, z2 = l2_normalize(z1), l2_normalize(z2)
    # all_gather's transpose sums every device's column gradients back onto the owner's rows.
    z1_all = jax.lax.all_gather(z1, axis_name, tiled=True)
    z2_all = jax.lax.all_gather(z2, axis_name, tiled=True)
    first_row = jax.lax.axis_index(axis_name) * z1.shape[0]
    total = _nt_xent_sum(z1, z2, z1_all, z2_all, first_row, temperature, block_size)
    return jax.lax.psum(total, axis_name) / (2 * n)

  return jax.shard_map(per_device, mesh=mesh, in_specs=(P(axis_name), P(axis_name)),
                       out_specs=P())(z1, z2)


def _info_nce_sum(q, k, neg, temperature, block_size):
  """Sum over the queries of the cross-entropy with label 0 (all inputs L2-normalised)."""
  positive = jnp.sum(q * k, axis=-1) / temperature  # [N]
  excluded = jnp.full(q.shape[:1], -1, jnp.int32)  # no negative is the query itself
  negative_lse = _row_logsumexp(q / temperature, neg, excluded, block_size)  # [N]
  return jnp.sum(jnp.logaddexp(positive, negative_lse) - positive)


def info_nce_blockwise(
    query: jax.Array,
    key: jax.Array,
    negatives: jax.Array,
    *,
    temperature: float,
    block_size: int,
    mesh: Mesh | None = None,
    axis_name: str = 'data',
) -> jax.Array:
  """InfoNCE of MoCo (He et al. 2020; van den Oord et al. 2018), in blocks: equal to `info_nce`.

  Each query is classified among its key (class 0) and K negatives by cosine similarity /
  temperature. With negatives shared by all queries ([K, D], MoCo's queue) each query's
  log-sum-exp over the negatives is accumulated over tiles of [block_size, block_size]
  similarities (forward and backward), so memory is O(block_size^2 + (N + K) D) instead of
  the dense loss's O(N K); N and K need not be multiples of block_size. With per-query
  negatives ([N, K, D]) the inputs themselves are N K D numbers, more than the [N, K] logits,
  so blocks would save nothing: that case is computed by the dense `info_nce` (mesh unused).

  No stop-gradient is applied here: the method decides (MoCo stops gradients through the key
  and the queue).

  Args:
    query: [N, D] query projections (not normalised).
    key: [N, D] positive keys; row i is the positive of query row i.
    negatives: [K, D] negatives shared by all queries, or [N, K, D] one set per query.
    temperature: softmax temperature (> 0), e.g. 0.07 - 0.2.
    block_size: rows and columns of one tile of similarities (>= 1), e.g. 1024.
    mesh: None computes on global arrays (right under `jax.jit` with sharded inputs, every
      device computing every tile). With the mesh the batch is sharded over, a
      `jax.shard_map` lets each device compute only its own queries against the (replicated)
      negatives; their gradient is summed over devices. N must be a multiple of the devices
      on axis_name.
    axis_name: the mesh axis the batch is sharded over.

  Returns:
    Scalar loss (at least float32): the mean over the N queries of the cross-entropy of the
    logits [q.k, q.n_1, ..., q.n_K] / temperature with label 0.
  """
  check_shapes = contrastive._check_query_key_negatives  # pylint: disable=protected-access
  check_shapes('info_nce_blockwise', query, key, negatives)
  _check_block_size('info_nce_blockwise', block_size)
  if negatives.ndim == 3:
    return contrastive.info_nce(query, key, negatives, temperature=temperature)
  n = query.shape[0]
  query, key, negatives = map(_at_least_float32, (query, key, negatives))
  if mesh is None:
    q, k, neg = map(l2_normalize, (query, key, negatives))
    return _info_nce_sum(q, k, neg, temperature, block_size) / n
  _check_mesh('info_nce_blockwise', mesh, axis_name, n)

  def per_device(query, key, negatives):  # this device's queries and keys, all negatives
    q, k, neg = map(l2_normalize, (query, key, negatives))
    # Marked device-varying: the transpose of that cast sums the devices' gradients.
    neg = jax.lax.pcast(neg, axis_name, to='varying')
    return jax.lax.psum(_info_nce_sum(q, k, neg, temperature, block_size), axis_name) / n

  return jax.shard_map(per_device, mesh=mesh, in_specs=(P(axis_name), P(axis_name), P()),
                       out_specs=P())(query, key, negatives)
