"""Transformers for text: a BERT-style encoder and a GPT-style causal decoder on shared blocks.

Both are built from the same pieces:

* `Embeddings`: token + learned absolute position (+ segment) embeddings, then (post-LN models
  only, as BERT) a LayerNorm, then dropout.
* `TransformerBlock`: multi-head self-attention + GELU MLP, each with a residual connection.
  ``pre_ln=False`` is BERT's *post*-LN block (``x = LN(x + f(x))``, Devlin et al. 2019);
  ``pre_ln=True`` is GPT-2's *pre*-LN block (``x = x + f(LN(x))``, Radford et al. 2019), which
  is followed by one final LayerNorm after the last block and has no embedding LayerNorm.
* The output projection onto the vocabulary is *tied* to the token embedding
  (``nn.Embed.attend``), as in BERT's masked-LM head and GPT-2.

Attention is written here with ``jnp.einsum`` rather than ``nn.MultiHeadDotProductAttention``,
so that the masking (a large negative, never ``-inf``), the float32 softmax and the dropout on the
attention probabilities are visible in one place and tested against a NumPy reference.

Masks are boolean ``[B, 1, L, L]`` (query x key, broadcast over heads): `padding_mask` hides pad
keys, `causal_mask` also hides later keys. Both always let a position attend to itself, so no
row is ever fully masked: a fully masked row would fall back to a uniform average over *all*
keys (including later ones, breaking causality) instead of producing a meaningful output.

Mixed precision: parameters are float32; Dense layers and the tied output projection compute in
``dtype``; the residual stream, the LayerNorms and the softmax stay in float32; hidden states and
logits are returned in float32. Initialisation is BERT's and GPT-2's N(0, 0.02) for every kernel
and embedding (biases zero, LayerNorm scale one).

Token-id checks: sequence length (a static shape) is checked on every call, inside ``jit`` too;
the *values* (``0 <= id < vocab_size``, segment ids ``< num_segments``) only when the array is
concrete, i.e. eager calls such as ``model.init`` or host-side via `check_tokens`. Inside
``jit`` an out-of-range id is not detected: the embedding lookup (``jnp.take``'s fill mode)
returns NaN for it, which the train loop's non-finite guard then reports.

Weight decay: `jssl.models.weight_decay_mask` decays leaves called ``kernel`` only, so the
embeddings (``embedding``, ``position``), biases and LayerNorm parameters are not decayed.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# Added to masked attention logits (float32). Finite, so no -inf arithmetic: exp underflows to 0.
_MASKED_LOGIT = -1e9
_INIT = nn.initializers.normal(stddev=0.02)


def _layer_norm(pre_ln: bool, name: str | None = None) -> nn.LayerNorm:
  # BERT's epsilon is 1e-12, GPT-2's 1e-5; computed in float32 either way.
  return nn.LayerNorm(epsilon=1e-5 if pre_ln else 1e-12, dtype=jnp.float32,
                      param_dtype=jnp.float32, name=name)


def padding_mask(tokens: jax.Array, pad_id: int | None) -> jax.Array:
  """Attention mask that hides padding keys.

  Args:
    tokens: int ``[B, L]``.
    pad_id: the padding id, or None for no padding (everything visible).

  Returns:
    bool ``[B, 1, L, L]``: ``mask[b, 0, q, k]`` is True where query q may attend to key k, i.e.
    where ``tokens[b, k] != pad_id`` or ``q == k`` (a pad query sees itself, so no row is empty).
  """
  batch, length = tokens.shape
  if pad_id is None:
    return jnp.ones((batch, 1, length, length), bool)
  keys = (tokens != pad_id)[:, None, None, :]
  return keys | jnp.eye(length, dtype=bool)[None, None]


def causal_mask(tokens: jax.Array, pad_id: int | None) -> jax.Array:
  """`padding_mask` and no attention to later positions: ``mask[b, 0, q, k]`` needs ``k <= q``."""
  length = tokens.shape[1]
  return padding_mask(tokens, pad_id) & jnp.tril(jnp.ones((length, length), bool))[None, None]


def masked_mean(hidden: jax.Array, tokens: jax.Array, pad_id: int | None) -> jax.Array:
  """Mean of ``hidden`` over the non-pad positions of each sequence.

  Args:
    hidden: ``[B, L, H]``.
    tokens: int ``[B, L]``.
    pad_id: the padding id, or None to average over all L positions.

  Returns:
    float32 ``[B, H]``; zeros for a sequence made only of padding.
  """
  hidden = jnp.asarray(hidden, jnp.float32)
  if pad_id is None:
    return jnp.mean(hidden, axis=1)
  weights = (tokens != pad_id).astype(jnp.float32)[..., None]
  return jnp.sum(hidden * weights, axis=1) / jnp.maximum(jnp.sum(weights, axis=1), 1.0)


def check_tokens(tokens: Any, *, vocab_size: int, max_length: int,
                 segment_ids: Any = None, num_segments: int = 0, what: str = 'tokens') -> None:
  """Validates a token batch: shapes and dtypes always, id ranges where the values are concrete.

  Called by the models on every call; cheap to call on host (NumPy) batches too.

  Args:
    tokens: int ``[B, L]`` (NumPy, a concrete JAX array, or a tracer inside ``jit``).
    vocab_size: ids must be in ``[0, vocab_size)``.
    max_length: L must be at most this (the position-embedding table's size).
    segment_ids: optional int ``[B, L]`` with values in ``[0, num_segments)``.
    num_segments: number of segment embeddings (0: segment ids are not accepted).
    what: the model's name, for the messages.

  Raises:
    ValueError: naming what is wrong and the config field to change.
  """
  shape = tuple(np.shape(tokens))
  if len(shape) != 2:
    raise ValueError(f'{what}: tokens must be [batch, length], got shape {shape}.')
  dtype = tokens.dtype if hasattr(tokens, 'dtype') else np.asarray(tokens).dtype
  if not jnp.issubdtype(dtype, jnp.integer):
    raise ValueError(f'{what}: tokens must be integer ids, got dtype {dtype}.')
  length = shape[1]
  if length > max_length:
    raise ValueError(
        f'{what}: sequence length {length} exceeds max_length {max_length} (the size of the '
        f'position embedding table, config field model.max_length); set model.max_length >= '
        f'{length} or truncate the sequences to {max_length} tokens.')
  if not isinstance(tokens, jax.core.Tracer) and np.size(tokens):
    values = np.asarray(tokens)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= vocab_size:
      raise ValueError(
          f'{what}: token ids must be in [0, {vocab_size}) (vocab_size, config field '
          f'model.vocab_size), got ids from {low} to {high}; the tokenizer and the model '
          f'disagree about the vocabulary.')
  if segment_ids is None:
    return
  if num_segments == 0:
    raise ValueError(f'{what}: segment_ids were given but the model has num_segments=0.')
  if tuple(np.shape(segment_ids)) != shape:
    raise ValueError(f'{what}: segment_ids shape {tuple(np.shape(segment_ids))} must equal the '
                     f'tokens shape {shape}.')
  if not isinstance(segment_ids, jax.core.Tracer) and np.size(segment_ids):
    values = np.asarray(segment_ids)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= num_segments:
      raise ValueError(f'{what}: segment ids must be in [0, {num_segments}) (num_segments), got '
                       f'ids from {low} to {high}.')


class SelfAttention(nn.Module):
  """Multi-head scaled dot-product self-attention (Vaswani et al., 2017), written with einsum.

  Attributes:
    hidden_dim: model width H (input and output); must be divisible by ``num_heads``.
    num_heads: number of heads N; each has ``H / N`` dimensions.
    dropout_rate: dropout on the attention probabilities (BERT's
      ``attention_probs_dropout_prob``), active only when training.
    dtype: computation dtype of the projections; logits and softmax are float32.
  """
  hidden_dim: int
  num_heads: int
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask, *, train: bool):
    """``x [B, L, H]``, bool ``mask [B, 1, L, L]`` (query x key) -> ``[B, L, H]`` in ``dtype``."""
    if self.hidden_dim % self.num_heads:
      raise ValueError(f'hidden_dim {self.hidden_dim} must be divisible by num_heads '
                       f'{self.num_heads}.')
    head_dim = self.hidden_dim // self.num_heads

    def project(name):
      return nn.DenseGeneral((self.num_heads, head_dim), dtype=self.dtype,
                             param_dtype=jnp.float32, kernel_init=_INIT, name=name)(x)

    query, key, value = project('query'), project('key'), project('value')  # [B, L, N, D]
    logits = jnp.einsum('bqnd,bknd->bnqk', query, key,
                        preferred_element_type=jnp.float32) / math.sqrt(head_dim)
    logits = jnp.where(mask, logits, _MASKED_LOGIT)
    probs = jax.nn.softmax(logits, axis=-1)
    probs = nn.Dropout(self.dropout_rate, deterministic=not train)(probs)
    out = jnp.einsum('bnqk,bknd->bqnd', probs.astype(self.dtype), value)
    return nn.DenseGeneral(self.hidden_dim, axis=(-2, -1), dtype=self.dtype,
                           param_dtype=jnp.float32, kernel_init=_INIT, name='out')(out)


class TransformerBlock(nn.Module):
  """Self-attention + GELU MLP with residuals, post-LN (BERT) or pre-LN (GPT-2).

  ``pre_ln=False`` (BERT): ``x = LN(x + Drop(Attn(x))); x = LN(x + Drop(MLP(x)))``.
  ``pre_ln=True`` (GPT-2): ``x = x + Drop(Attn(LN(x))); x = x + Drop(MLP(LN(x)))``; the model
  then applies a final LayerNorm after its last block.
  ``MLP(x) = Dense_H(GELU(Dense_mlp_dim(x)))`` with the exact (erf) GELU.

  Attributes:
    hidden_dim: model width H.
    num_heads: attention heads (H must be divisible by it).
    mlp_dim: width of the MLP's hidden layer (4 H in BERT and GPT-2).
    dropout_rate: dropout on the attention probabilities and on both sublayers' outputs,
      active only when ``train`` (rng collection ``'dropout'``).
    pre_ln: LayerNorm placement, see above.
    dtype: computation dtype of the Dense layers; the residual stream stays float32.
  """
  hidden_dim: int
  num_heads: int
  mlp_dim: int
  dropout_rate: float = 0.1
  pre_ln: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask, *, train: bool):
    """Applies the block.

    Args:
      x: ``[B, L, H]``.
      mask: bool ``[B, 1, L, L]``, True where query q may attend to key k.
      train: enable dropout (needs a ``'dropout'`` rng).

    Returns:
      float32 ``[B, L, H]``.
    """
    x = jnp.asarray(x, jnp.float32)

    def attention(y):
      return SelfAttention(self.hidden_dim, self.num_heads, self.dropout_rate, self.dtype,
                           name='attention')(y, mask, train=train)

    def mlp(y):
      y = nn.Dense(self.mlp_dim, dtype=self.dtype, param_dtype=jnp.float32, kernel_init=_INIT,
                   name='mlp_in')(y)
      y = nn.gelu(y, approximate=False)
      return nn.Dense(self.hidden_dim, dtype=self.dtype, param_dtype=jnp.float32,
                      kernel_init=_INIT, name='mlp_out')(y)

    def dropout(y):
      return nn.Dropout(self.dropout_rate, deterministic=not train)(y).astype(jnp.float32)

    ln_attention = _layer_norm(self.pre_ln, 'ln_attention')
    ln_mlp = _layer_norm(self.pre_ln, 'ln_mlp')
    if self.pre_ln:
      x = x + dropout(attention(ln_attention(x)))
      return x + dropout(mlp(ln_mlp(x)))
    x = ln_attention(x + dropout(attention(x)))
    return ln_mlp(x + dropout(mlp(x)))


class Embeddings(nn.Module):
  """Token + learned position (+ segment) embeddings, [LayerNorm], dropout.

  Attributes:
    vocab_size: number of token ids V.
    max_length: size of the position table: the longest sequence the model accepts.
    hidden_dim: embedding width H.
    num_segments: segment (token type) embeddings; 0 for none.
    dropout_rate: dropout on the summed embeddings when training.
    layer_norm: LayerNorm the sum (BERT, post-LN models); pre-LN models (GPT-2) do not.
    dtype: computation dtype of `attend`; the embeddings are returned in float32.
  """
  vocab_size: int
  max_length: int
  hidden_dim: int
  num_segments: int = 0
  dropout_rate: float = 0.1
  layer_norm: bool = True
  dtype: Any = jnp.float32

  def setup(self):
    # dtype=self.dtype: `attend` (the tied output projection) then computes in dtype.
    self.token = nn.Embed(self.vocab_size, self.hidden_dim, dtype=self.dtype,
                          param_dtype=jnp.float32, embedding_init=_INIT)
    self.position = self.param('position', _INIT, (self.max_length, self.hidden_dim),
                               jnp.float32)
    if self.num_segments:
      self.segment = nn.Embed(self.num_segments, self.hidden_dim, param_dtype=jnp.float32,
                              embedding_init=_INIT)
    if self.layer_norm:
      self.ln = _layer_norm(pre_ln=False)
    self.dropout = nn.Dropout(self.dropout_rate)

  def __call__(self, tokens, segment_ids=None, *, train: bool):
    """int ``tokens [B, L]``, optional int ``segment_ids [B, L]`` -> float32 ``[B, L, H]``."""
    x = self.token(tokens).astype(jnp.float32) + self.position[None, :tokens.shape[1]]
    if self.num_segments:
      if segment_ids is None:
        segment_ids = jnp.zeros_like(tokens)
      x = x + self.segment(segment_ids)
    if self.layer_norm:
      x = self.ln(x)
    return self.dropout(x, deterministic=not train)

  def attend(self, hidden):
    """Tied output projection: ``hidden [..., H] -> [..., V]`` (float32) via ``Embed.attend``."""
    return self.token.attend(hidden.astype(self.dtype)).astype(jnp.float32)


def _validate(module, what: str) -> None:
  """Config checks shared by the encoder and the decoder, with the fields to change."""
  for field in ('vocab_size', 'max_length', 'num_layers', 'hidden_dim', 'num_heads', 'mlp_dim'):
    value = getattr(module, field)
    if not isinstance(value, int) or value < 1:
      raise ValueError(f'{what}: {field} must be a positive int, got {value!r}.')
  if module.hidden_dim % module.num_heads:
    raise ValueError(f'{what}: hidden_dim {module.hidden_dim} must be divisible by num_heads '
                     f'{module.num_heads}.')
  if not 0.0 <= module.dropout_rate < 1.0:
    raise ValueError(f'{what}: dropout_rate must be in [0, 1), got {module.dropout_rate}.')
  if module.pad_id is not None and not 0 <= module.pad_id < module.vocab_size:
    raise ValueError(f'{what}: pad_id {module.pad_id} must be in [0, vocab_size='
                     f'{module.vocab_size}) or None.')


class TransformerEncoder(nn.Module):
  """BERT-style bidirectional encoder; defaults are BERT-tiny (2 layers, H=128, 2 heads, 512).

  Post-LN blocks (BERT) by default; ``pre_ln=True`` gives GPT-2-style pre-LN blocks with a
  final LayerNorm and no embedding LayerNorm. Padding keys (``tokens == pad_id``) are masked.

  Use: ``variables = model.init(rng, tokens, segment_ids, train=False)`` creates every parameter
  (the masked-LM and pooler heads included); then
  ``hidden = model.apply(variables, tokens, segment_ids, train=True, rngs={'dropout': key})``,
  ``model.apply(variables, hidden, method='mlm_logits')``,
  ``model.apply(variables, hidden, tokens, method='pooled')``.

  Attributes:
    vocab_size: number of token ids V (config field ``model.vocab_size``).
    max_length: longest accepted sequence L (``model.max_length``).
    num_layers: number of `TransformerBlock` s.
    hidden_dim: model width H, also ``features_dim``.
    num_heads: attention heads.
    mlp_dim: MLP hidden width.
    dropout_rate: dropout on embeddings, attention probabilities and sublayer outputs.
    num_segments: segment (sentence A / B) embeddings; 0 for none.
    pre_ln: pre-LN (GPT-2) instead of BERT's post-LN blocks.
    pad_id: padding id, masked as an attention key and left out of `pooled`'s mean; None for no
      padding.
    dtype: computation dtype; params, hidden states and logits are float32.
  """
  vocab_size: int
  max_length: int
  num_layers: int = 2
  hidden_dim: int = 128
  num_heads: int = 2
  mlp_dim: int = 512
  dropout_rate: float = 0.1
  num_segments: int = 2
  pre_ln: bool = False
  pad_id: int | None = 0
  dtype: Any = jnp.float32

  @property
  def features_dim(self) -> int:
    """H, the size of each position's hidden state (and of both `pooled` vectors)."""
    return self.hidden_dim

  def setup(self):
    _validate(self, 'TransformerEncoder')
    self.embeddings = Embeddings(self.vocab_size, self.max_length, self.hidden_dim,
                                 self.num_segments, self.dropout_rate,
                                 layer_norm=not self.pre_ln, dtype=self.dtype)
    self.blocks = [
        TransformerBlock(self.hidden_dim, self.num_heads, self.mlp_dim, self.dropout_rate,
                         self.pre_ln, self.dtype) for _ in range(self.num_layers)
    ]
    if self.pre_ln:
      self.final_ln = _layer_norm(pre_ln=True)
    # BERT's masked-LM transform; the projection itself is the tied token embedding.
    self.mlm_dense = nn.Dense(self.hidden_dim, dtype=self.dtype, param_dtype=jnp.float32,
                              kernel_init=_INIT)
    self.mlm_ln = _layer_norm(pre_ln=False)
    self.mlm_bias = self.param('mlm_bias', nn.initializers.zeros, (self.vocab_size,),
                               jnp.float32)
    self.pooler = nn.Dense(self.hidden_dim, dtype=self.dtype, param_dtype=jnp.float32,
                           kernel_init=_INIT)

  def __call__(self, tokens, segment_ids=None, *, train: bool):
    """Encodes a batch of token sequences.

    Args:
      tokens: int ``[B, L]``, L <= max_length, ids in ``[0, vocab_size)``.
      segment_ids: optional int ``[B, L]`` in ``[0, num_segments)`` (default all 0).
      train: enable dropout (needs a ``'dropout'`` rng).

    Returns:
      float32 ``[B, L, H]`` hidden states.

    Raises:
      ValueError: L > max_length, bad shapes, or (eager calls only) out-of-range ids.
    """
    check_tokens(tokens, vocab_size=self.vocab_size, max_length=self.max_length,
                 segment_ids=segment_ids, num_segments=self.num_segments,
                 what='TransformerEncoder')
    x = self.embeddings(tokens, segment_ids, train=train)
    mask = padding_mask(tokens, self.pad_id)
    for block in self.blocks:
      x = block(x, mask, train=train)
    if self.pre_ln:
      x = self.final_ln(x)
    if self.is_initializing():  # So that `init` creates the heads' parameters too.
      self.mlm_logits(x)
      self.pooled(x, tokens)
    return x

  def mlm_logits(self, hidden):
    """Masked-LM logits: ``LN(GELU(Dense(hidden))) @ token_embedding.T + bias``.

    Args:
      hidden: ``[..., H]`` hidden states (all positions or only the masked ones gathered).

    Returns:
      float32 ``[..., V]``.
    """
    x = self.mlm_dense(jnp.asarray(hidden, jnp.float32))
    x = self.mlm_ln(nn.gelu(x, approximate=False).astype(jnp.float32))
    return self.embeddings.attend(x) + self.mlm_bias

  def pooled(self, hidden, tokens):
    """Sequence-level vectors.

    Args:
      hidden: ``[B, L, H]`` from ``__call__``.
      tokens: int ``[B, L]``, the same tokens (for the padding).

    Returns:
      ``(cls, mean)``, float32 ``[B, H]`` each: ``cls = tanh(Dense(hidden[:, 0]))`` is BERT's
      pooled [CLS] output (for next-sentence prediction); ``mean`` is the mean over non-pad
      positions (`masked_mean`).
    """
    hidden = jnp.asarray(hidden, jnp.float32)
    cls = jnp.tanh(self.pooler(hidden[:, 0]).astype(jnp.float32))
    return cls, masked_mean(hidden, tokens, self.pad_id)


class CausalDecoder(nn.Module):
  """GPT-style causal language model on the same embeddings and blocks as `TransformerEncoder`.

  Pre-LN blocks (GPT-2) by default, with a final LayerNorm; ``pre_ln=False`` gives post-LN blocks
  with an embedding LayerNorm. Each position attends to itself and earlier non-pad positions;
  the output projection is the tied token embedding (no output bias, as GPT-2). No segment
  embeddings.

  Attributes:
    vocab_size: number of token ids V (config field ``model.vocab_size``).
    max_length: longest accepted sequence L (``model.max_length``).
    num_layers: number of `TransformerBlock` s.
    hidden_dim: model width H, also ``features_dim``.
    num_heads: attention heads.
    mlp_dim: MLP hidden width.
    dropout_rate: dropout on embeddings, attention probabilities and sublayer outputs.
    pre_ln: pre-LN (GPT-2, default) or post-LN (BERT) blocks.
    pad_id: padding id, masked as an attention key; None if every id is a real token.
    dtype: computation dtype; params and logits are float32.
  """
  vocab_size: int
  max_length: int
  num_layers: int = 2
  hidden_dim: int = 128
  num_heads: int = 2
  mlp_dim: int = 512
  dropout_rate: float = 0.1
  pre_ln: bool = True
  pad_id: int | None = 0
  dtype: Any = jnp.float32

  @property
  def features_dim(self) -> int:
    """H, the size of each position's hidden state."""
    return self.hidden_dim

  def setup(self):
    _validate(self, 'CausalDecoder')
    self.embeddings = Embeddings(self.vocab_size, self.max_length, self.hidden_dim,
                                 num_segments=0, dropout_rate=self.dropout_rate,
                                 layer_norm=not self.pre_ln, dtype=self.dtype)
    self.blocks = [
        TransformerBlock(self.hidden_dim, self.num_heads, self.mlp_dim, self.dropout_rate,
                         self.pre_ln, self.dtype) for _ in range(self.num_layers)
    ]
    if self.pre_ln:
      self.final_ln = _layer_norm(pre_ln=True)

  def hidden_states(self, tokens, *, train: bool):
    """int ``tokens [B, L]`` -> float32 ``[B, L, H]``; position t depends on tokens <= t only."""
    check_tokens(tokens, vocab_size=self.vocab_size, max_length=self.max_length,
                 what='CausalDecoder')
    x = self.embeddings(tokens, train=train)
    mask = causal_mask(tokens, self.pad_id)
    for block in self.blocks:
      x = block(x, mask, train=train)
    return self.final_ln(x) if self.pre_ln else x

  def __call__(self, tokens, *, train: bool):
    """Next-token logits.

    Args:
      tokens: int ``[B, L]``, L <= max_length, ids in ``[0, vocab_size)``.
      train: enable dropout (needs a ``'dropout'`` rng).

    Returns:
      float32 ``[B, L, V]``: ``logits[:, t]`` predicts ``tokens[:, t + 1]`` and depends only
      on ``tokens[:, :t + 1]``.
    """
    return self.embeddings.attend(self.hidden_states(tokens, train=train))
