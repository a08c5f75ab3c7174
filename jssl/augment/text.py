"""Pure, jit-compatible preparation of token sequences on the device: BERT's dynamic masking
and the packing of segments into [CLS] A [SEP] (B [SEP]) inputs.

Sequences hold content ids only (no special tokens), padded with `pad_id` at the end; the
packing adds the special tokens, so masking, pairing and packing happen anew at every step
(BERT's original static masking fixed each example's masks for the whole run; RoBERTa showed
dynamic masking is at least as good).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp


def _non_special(tokens: jax.Array, special_ids: Sequence[int]) -> jax.Array:
  ok = jnp.ones(tokens.shape, bool)
  for special in special_ids:
    ok &= tokens != special
  return ok


def random_ordinary_tokens(key: jax.Array, shape: tuple[int, ...], *, vocab_size: int,
                           special_ids: Sequence[int]) -> jax.Array:
  """Uniform ids in [0, vocab_size) that are not special: int32 of `shape`."""
  specials = sorted(set(int(s) for s in special_ids if 0 <= s < vocab_size))
  values = jax.random.randint(key, shape, 0, vocab_size - len(specials), dtype=jnp.int32)
  for special in specials:  # skip over each special id in increasing order
    values = values + (values >= special).astype(jnp.int32)
  return values


def mask_tokens(key: jax.Array, tokens: jax.Array, *, mask_id: int, vocab_size: int,
                special_ids: Sequence[int], rate: float = 0.15
                ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """BERT's masked-LM corruption (Devlin et al. 2019, section 3.1), one key per example.

  Each position that holds neither a special token nor padding is selected with probability
  `rate`; a selected position becomes `mask_id` with probability 0.8, a uniformly random
  non-special token with 0.1, and stays as it is with 0.1.

  Args:
    key: a PRNG key (split into one key per example).
    tokens: [B, L] int32 ids (padding and special ids included).
    mask_id: the [MASK] id.
    vocab_size: V; random replacements are drawn from the non-special ids in [0, V).
    special_ids: ids never selected ([PAD], [CLS], [SEP], [MASK], [UNK], ...).
    rate: the selection probability.

  Returns:
    (corrupted [B, L] int32, targets [B, L] int32 = the original tokens, weights [B, L]
    float32 = 1 at selected positions, 0 elsewhere).
  """
  tokens = tokens.astype(jnp.int32)

  def one(key, row):
    select_key, kind_key, random_key = jax.random.split(key, 3)
    selected = (jax.random.uniform(select_key, row.shape) < rate) & _non_special(row, special_ids)
    kind = jax.random.uniform(kind_key, row.shape)
    random_tokens = random_ordinary_tokens(random_key, row.shape, vocab_size=vocab_size,
                                           special_ids=special_ids)
    corrupted = jnp.where(selected & (kind < 0.8), mask_id, row)
    corrupted = jnp.where(selected & (kind >= 0.8) & (kind < 0.9), random_tokens, corrupted)
    return corrupted, selected.astype(jnp.float32)

  corrupted, weights = jax.vmap(one)(jax.random.split(key, tokens.shape[0]), tokens)
  return corrupted, tokens, weights


def pack_pair(tokens_a: jax.Array, tokens_b: jax.Array | None, *, cls_id: int, sep_id: int,
              pad_id: int) -> tuple[jax.Array, jax.Array]:
  """Packs content segments into BERT's input: [CLS] a [SEP] b [SEP] then padding.

  Args:
    tokens_a: [B, La] int32 content ids, padded with `pad_id` at the end.
    tokens_b: [B, Lb] the same for the second segment, or None for single segments
      ([CLS] a [SEP]).
    cls_id, sep_id, pad_id: the special ids.

  Returns:
    (tokens [B, La + Lb + 3] (or [B, La + 2]) int32, segment_ids of the same shape: 0 for
    [CLS], a and its [SEP], 1 for b and its [SEP], 0 for padding).
  """
  single = tokens_b is None
  if single:
    tokens_b = jnp.zeros((tokens_a.shape[0], 0), jnp.int32)
  length_a, length_b = tokens_a.shape[1], tokens_b.shape[1]
  total = length_a + 2 if single else length_a + length_b + 3

  def one(a, b):
    la = jnp.sum(a != pad_id)
    lb = jnp.sum(b != pad_id)
    j = jnp.arange(total)
    from_a = a[jnp.clip(j - 1, 0, length_a - 1)]
    from_b = b[jnp.clip(j - la - 2, 0, max(length_b - 1, 0))] if length_b else jnp.zeros_like(j)
    out = jnp.full((total,), pad_id, jnp.int32)
    out = jnp.where(j == 0, cls_id, out)
    out = jnp.where((j >= 1) & (j <= la), from_a, out)
    out = jnp.where(j == la + 1, sep_id, out)
    segment = jnp.zeros((total,), jnp.int32)
    if not single:
      in_b = (j >= la + 2) & (j < la + 2 + lb)
      out = jnp.where(in_b, from_b, out)
      out = jnp.where(j == la + lb + 2, sep_id, out)
      segment = jnp.where((j >= la + 2) & (j <= la + lb + 2), 1, 0).astype(jnp.int32)
    return out.astype(jnp.int32), segment

  return jax.vmap(one)(tokens_a.astype(jnp.int32), tokens_b.astype(jnp.int32))
