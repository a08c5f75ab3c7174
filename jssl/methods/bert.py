"""BERT (Devlin et al., NAACL 2019): masked-LM and next-sentence prediction on a Transformer.

Everything random about an example happens on the device, anew at every step (`prepare`):

* Next-sentence pairs (`config.bert.nsp`): example i of the global batch (a window of a
  corpus document, `tokens`) gets as segment B, with probability 1/2 (its own key), the window
  that follows it in its document (`next_tokens`; label 1, IsNext), otherwise the
  `next_tokens` of example (i + s) mod B (label 0, NotNext), where the shift s in [1, B) is drawn
  once per step from the step's key, so the partner is never the example itself. A document's
  last window has no next window (its `next_tokens` is all padding): such an example is always
  NotNext, and a NotNext partner without a next window gives its own `tokens` instead, so that
  segment B is never empty and an empty B never gives the label away.
* Packing: [CLS] A [SEP] B [SEP] (`jssl.augment.text.pack_pair`), segment ids 0 / 1; without
  NSP the single segment [CLS] A [SEP] (pure MLM, as RoBERTa).
* Masking (`jssl.augment.text.mask_tokens`, one key per example): each position that is not
  a special token or padding is selected with probability `config.bert.mask_rate`; of those,
  80 % become [MASK], 10 % a random non-special token, 10 % stay. As BERT's reference code
  the MLM head is applied only at the selected positions, gathered into `max_predictions`
  slots per sequence (`masked_lm_positions`); in the rare sequence with more selected positions
  than slots, the later ones are restored to their original token and not predicted, so what
  is corrupted is always what is predicted. 0 slots means every position.

Loss: `jssl.losses.mlm_loss` (mean cross-entropy over every selected position of the global
batch) + `config.bert.nsp_weight` x the NSP cross-entropy of a 2-way classifier on BERT's tanh
pooler of [CLS]. Dropout keys come from the step's loss key.

Representation (`represent`, for the kNN / linear probes on `config.eval.dataset`): the mean
of the final hidden states over the non-pad positions of `[CLS] tokens [SEP]`. Not the pooled
[CLS]: it is trained only by the NSP classifier (not at all without NSP) and is a poor frozen
sentence representation; mean pooling is the stronger frozen one (Reimers & Gurevych 2019).
There is no online probe (`online_probe=False`, `LossOutput.features` None): the corpus's
label is the source (the book, or WordNet), not the label space of the probe's evaluation
dataset (gloss categories, fortune files), so a probe trained on it would be scored on labels
it never saw.

Evaluation (`evaluate`): `mlm_perplexity`, exp of the mean MLM cross-entropy on the held-out
test split of the training corpus (its first `config.bert.eval_examples` examples), prepared
exactly as in training (pairs, packing, masking) with a fixed key, so every evaluation of a run
scores the same masked positions; `unigram_perplexity`, the perplexity of the same masked
targets under the add-one-smoothed unigram distribution of the training split (the baseline a
model that ignores context reaches); and with NSP `nsp_test_accuracy` on those pairs.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jssl import losses
from jssl import models
from jssl.augment import text as text_augment
from jssl.config import ConfigError
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo
from jssl.models import transformer

_EVAL_SEED = 20190601  # the fixed key of the held-out pairs and masks of every evaluation
_INIT = nn.initializers.normal(stddev=0.02)
_COUNT_CHUNK = 65536  # training examples read at a time for the unigram counts


def _positive_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def sequence_length(max_length: int, nsp: bool) -> int:
  """Positions of a packed input: [CLS] A [SEP] B [SEP] (2 L + 3) or [CLS] A [SEP] (L + 2)."""
  return 2 * max_length + 3 if nsp else max_length + 2


def _check(config: ml_collections.ConfigDict, info: TrainInfo):
  """Validates the config against the dataset; returns (tokenizer, sequence length, slots)."""
  c, m = config.bert, config.model
  dataset = info.dataset
  if dataset is None or getattr(dataset, 'modality', None) != 'text':
    raise ConfigError(f'bert is a language model: config.dataset.name={config.dataset.name!r} '
                      'is not a text dataset; use --config.dataset.name=austen_wordnet.')
  tokenizer = dataset.tokenizer
  specials = sorted(set(int(i) for i in tokenizer.special_ids))
  if tokenizer.vocab_size <= len(specials):
    raise ConfigError(
        f'bert: the tokenizer ({tokenizer.path}) has {tokenizer.vocab_size} ids, no more than '
        f'its {len(specials)} special tokens, so there is no ordinary token to predict or to '
        f'draw random replacements from; raise --config.dataset.vocab_size (it is '
        f'{config.dataset.vocab_size}).')
  if any(i >= tokenizer.vocab_size for i in specials):
    raise ConfigError(f'bert: the special ids {specials} of the tokenizer ({tokenizer.path}) are '
                      f'not all below its vocab_size {tokenizer.vocab_size}.')
  for field in ('num_layers', 'hidden_dim', 'num_heads', 'mlp_dim', 'max_length'):
    if not _positive_int(m.get(field)):
      raise ConfigError(f'bert: config.model.{field}={m.get(field)!r} must be a positive integer '
                        '(start from experiments/configs/bert.py, which sets the Transformer '
                        'fields).')
  missing = [field for field in ('dropout_rate', 'pre_ln', 'dtype') if field not in m]
  if missing:
    raise ConfigError(f'bert: config.model lacks {missing}; start from '
                      'experiments/configs/bert.py, which sets the Transformer fields.')
  if m.hidden_dim % m.num_heads:
    raise ConfigError(f'bert: config.model.hidden_dim={m.hidden_dim} must be divisible by '
                      f'config.model.num_heads={m.num_heads}.')
  if not 0.0 <= m.dropout_rate < 1.0:
    raise ConfigError(f'bert: config.model.dropout_rate={m.dropout_rate} must be in [0, 1).')
  if not 0.0 < c.mask_rate < 1.0:
    raise ConfigError(f'config.bert.mask_rate={c.mask_rate} must be in (0, 1) (BERT: 0.15); '
                      'it is the probability that a token is selected for prediction.')
  if c.nsp_weight < 0:
    raise ConfigError(f'config.bert.nsp_weight={c.nsp_weight} must be >= 0 (1.0 as BERT; '
                      'set --config.bert.nsp=False to drop next-sentence prediction).')
  if not _positive_int(c.eval_examples):
    raise ConfigError(f'config.bert.eval_examples={c.eval_examples!r} must be a positive '
                      'integer.')
  length = int(dataset.max_length)
  total = sequence_length(length, c.nsp)
  if total > m.max_length:
    form = ('[CLS] A [SEP] B [SEP] = 2 * max_length + 3' if c.nsp
            else '[CLS] A [SEP] = max_length + 2')
    raise ConfigError(
        f'bert: config.dataset.max_length={length} packs into {form} = {total} positions, '
        f'more than the position table config.model.max_length={m.max_length}; set '
        f'--config.model.max_length={total} or lower --config.dataset.max_length to '
        f'{(m.max_length - 3) // 2 if c.nsp else m.max_length - 2}.')
  if c.nsp:
    fields = dataset.train.get_batch(np.zeros((1,), np.int64))
    if 'next_tokens' not in fields:
      raise ConfigError(
          f'config.bert.nsp=True needs a corpus whose examples carry the window that follows '
          f'them ("next_tokens", as austen_wordnet); {config.dataset.name!r} has only '
          f'{sorted(fields)}. Use --config.dataset.name=austen_wordnet or '
          '--config.bert.nsp=False.')
    if config.batch_size < 2:
      raise ConfigError(f'config.bert.nsp=True takes NotNext segments from another example of '
                        f'the batch: config.batch_size={config.batch_size} must be >= 2.')
  slots = c.max_predictions
  if not isinstance(slots, (int, np.integer)) or slots < 0:
    raise ConfigError(f'config.bert.max_predictions={slots!r} must be an integer >= 0 (0: every '
                      'position).')
  slots = total if slots == 0 else min(int(slots), total)
  content = 2 * length if c.nsp else length
  if slots < c.mask_rate * content:
    raise ConfigError(
        f'config.bert.max_predictions={slots} is below the expected number of selected tokens '
        f'({c.mask_rate} x {content} content positions = {c.mask_rate * content:.1f}), so the '
        f'masking rate would silently drop; set it to at least '
        f'{math.ceil(c.mask_rate * content + 4 * math.sqrt(content * c.mask_rate))} or 0 (every '
        'position).')
  return tokenizer, total, slots


def make_pairs(rng: jax.Array, tokens: jax.Array, next_tokens: jax.Array, *, pad_id: int
               ) -> tuple[jax.Array, jax.Array]:
  """Next-sentence pairs of a global batch (see the module docstring).

  Args:
    rng: a key; one coin per example from `jax.random.split(coin_key, B)`, one shift per batch.
    tokens: [B, L] int32 segment A of every example (content ids, padded).
    next_tokens: [B, L] int32 the window that follows each (all `pad_id` where none does).
    pad_id: the padding id.

  Returns:
    (segment B [B, L] int32, is_next [B] int32: 1 where segment B is the example's own
    `next_tokens`, 0 where it is another example's `next_tokens` (or, if that one has none,
    its `tokens`)).
  """
  batch = tokens.shape[0]
  coin_key, shift_key = jax.random.split(rng)
  coins = jax.vmap(lambda key: jax.random.bernoulli(key, 0.5))(jax.random.split(coin_key, batch))
  has_next = jnp.any(next_tokens != pad_id, axis=1)
  is_next = coins & has_next
  shift = jax.random.randint(shift_key, (), 1, batch)
  partner = (jnp.arange(batch) + shift) % batch
  random_b = jnp.where(has_next[partner][:, None], next_tokens[partner], tokens[partner])
  segment_b = jnp.where(is_next[:, None], next_tokens, random_b)
  return segment_b.astype(jnp.int32), is_next.astype(jnp.int32)


def prediction_slots(corrupted: jax.Array, original: jax.Array, weights: jax.Array,
                     slots: int) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Gathers the selected positions of each sequence into `slots` prediction slots.

  Args:
    corrupted: [B, T] int32 masked inputs.
    original: [B, T] int32 the tokens before masking.
    weights: [B, T] float32 1 at selected positions.
    slots: K <= T.

  Returns:
    (inputs [B, T]: `corrupted` with the selected positions beyond the first K of a sequence
    restored to `original`; positions [B, K] int32, the kept selected positions first, in
    order, then unselected ones; targets [B, K] int32 the original tokens there; weights
    [B, K] float32, 1 for a kept selected position, 0 for a filler slot).
  """
  length = corrupted.shape[1]
  if slots >= length:
    positions = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), corrupted.shape)
    return corrupted, positions, original, weights
  selected = weights > 0
  keep = selected & (jnp.cumsum(selected.astype(jnp.int32), axis=1) <= slots)
  inputs = jnp.where(selected & ~keep, original, corrupted)
  positions = jnp.argsort(~keep, axis=1, stable=True)[:, :slots].astype(jnp.int32)
  targets = jnp.take_along_axis(original, positions, axis=1)
  slot_weights = jnp.take_along_axis(keep, positions, axis=1).astype(jnp.float32)
  return inputs, positions, targets, slot_weights


def unigram_log_probs(source, *, vocab_size: int, pad_id: int) -> np.ndarray:
  """log p(v) of the add-one-smoothed unigram distribution of a token source's content ids.

  Args:
    source: a text source (`get_batch(indices)['tokens']` [N, L]).
    vocab_size: V.
    pad_id: the padding id, not counted.

  Returns:
    float64 [V]: log((count(v) + 1) / (N_tokens + V)).
  """
  counts = np.zeros(vocab_size, np.int64)
  for start in range(0, len(source), _COUNT_CHUNK):
    tokens = source.get_batch(np.arange(start, min(start + _COUNT_CHUNK, len(source))))['tokens']
    tokens = tokens[tokens != pad_id]
    counts += np.bincount(tokens.reshape(-1), minlength=vocab_size)[:vocab_size]
  return np.log(counts + 1.0) - np.log(counts.sum() + vocab_size)


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds BERT from `config.model` (the Transformer) and `config.bert`.

  `config.bert`: mask_rate (0.15), nsp (True), nsp_weight (1.0), max_predictions (MLM slots per
  sequence, 0 = every position), eval_examples (held-out examples of `evaluate`).
  `config.model`: num_layers, hidden_dim, num_heads, mlp_dim, dropout_rate, max_length (the
  position table), pre_ln, dtype.
  """
  tokenizer, total, slots = _check(config, info)
  c, m = config.bert, config.model
  nsp = bool(c.nsp)
  vocab_size = tokenizer.vocab_size
  special_ids = tuple(sorted(set(int(i) for i in tokenizer.special_ids)))
  pad_id, cls_id, sep_id, mask_id = (tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id,
                                     tokenizer.mask_id)
  encoder = transformer.TransformerEncoder(
      vocab_size=vocab_size, max_length=int(m.max_length), num_layers=int(m.num_layers),
      hidden_dim=int(m.hidden_dim), num_heads=int(m.num_heads), mlp_dim=int(m.mlp_dim),
      dropout_rate=float(m.dropout_rate), num_segments=2, pre_ln=bool(m.pre_ln), pad_id=pad_id,
      dtype=models.DTYPES[m.dtype])
  nsp_head = nn.Dense(2, kernel_init=_INIT, dtype=jnp.float32, param_dtype=jnp.float32)
  nsp_weight = float(c.nsp_weight)

  def init(rng, example):
    del example  # text: the inputs are built from the config
    encoder_rng, head_rng = jax.random.split(rng)
    tokens = jnp.full((2, total), cls_id, jnp.int32)
    params = {'encoder': encoder.init(encoder_rng, tokens, jnp.zeros_like(tokens),
                                      train=False)['params']}
    if nsp:
      params['nsp'] = nsp_head.init(head_rng, jnp.zeros((2, encoder.features_dim)))['params']
    return params, {}, {}

  def prepare(rng, batch, constants):
    """{'tokens' [B, T] masked inputs, 'segment_ids' [B, T], 'positions' / 'targets' /
    'weights' [B, K], 'nsp_label' [B] (with NSP)} from the raw global batch."""
    del constants
    pair_rng, mask_rng = jax.random.split(rng)
    tokens = batch['tokens'].astype(jnp.int32)
    inputs = {}
    if nsp:
      segment_b, inputs['nsp_label'] = make_pairs(
          pair_rng, tokens, batch['next_tokens'].astype(jnp.int32), pad_id=pad_id)
      packed, segment_ids = text_augment.pack_pair(tokens, segment_b, cls_id=cls_id,
                                                   sep_id=sep_id, pad_id=pad_id)
    else:
      packed, segment_ids = text_augment.pack_pair(tokens, None, cls_id=cls_id, sep_id=sep_id,
                                                   pad_id=pad_id)
    corrupted, original, weights = text_augment.mask_tokens(
        mask_rng, packed, mask_id=mask_id, vocab_size=vocab_size, special_ids=special_ids,
        rate=c.mask_rate)
    corrupted, positions, targets, weights = prediction_slots(corrupted, original, weights, slots)
    inputs.update(tokens=corrupted, segment_ids=segment_ids, positions=positions,
                  targets=targets, weights=weights)
    return inputs

  def forward(params, inputs, *, train, rng=None):
    """(MLM logits [B, K, V], NSP logits [B, 2] or None)."""
    variables = {'params': params['encoder']}
    rngs = {'dropout': rng} if train else None
    hidden = encoder.apply(variables, inputs['tokens'], inputs['segment_ids'], train=train,
                           rngs=rngs)
    gathered = jnp.take_along_axis(hidden, inputs['positions'][..., None], axis=1)
    mlm_logits = encoder.apply(variables, gathered, method='mlm_logits')
    nsp_logits = None
    if nsp:
      cls, _ = encoder.apply(variables, hidden, inputs['tokens'], method='pooled')
      nsp_logits = nsp_head.apply({'params': params['nsp']}, cls)
    return mlm_logits, nsp_logits

  def loss(params, batch_stats, extra, inputs, step, rng):
    del step
    mlm_logits, nsp_logits = forward(params, inputs, train=True, rng=rng)
    weights = inputs['weights']
    mlm = losses.mlm_loss(mlm_logits, inputs['targets'], weights)
    hits = (jnp.argmax(mlm_logits, -1) == inputs['targets']).astype(jnp.float32)
    metrics = {'mlm_loss': mlm,
               'mlm_accuracy': jnp.sum(hits * weights) / jnp.maximum(jnp.sum(weights), 1.0)}
    value = mlm
    if nsp:
      label = inputs['nsp_label']
      nsp_loss = optax.softmax_cross_entropy_with_integer_labels(nsp_logits, label).mean()
      metrics['nsp_loss'] = nsp_loss
      metrics['nsp_accuracy'] = jnp.mean(jnp.argmax(nsp_logits, -1) == label)
      value = value + nsp_weight * nsp_loss
    return value, LossOutput(batch_stats=batch_stats, extra=extra, metrics=metrics,
                             features=None)

  def mean_features(params, tokens, *, train, rng=None):
    packed, segment_ids = text_augment.pack_pair(tokens.astype(jnp.int32), None, cls_id=cls_id,
                                                 sep_id=sep_id, pad_id=pad_id)
    hidden = encoder.apply({'params': params['encoder']}, packed, segment_ids, train=train,
                           rngs={'dropout': rng} if train else None)
    return transformer.masked_mean(hidden, packed, pad_id)

  def represent(params, batch_stats, batch, constants):
    """[B, H] mean of the final hidden states over the non-pad positions of
    [CLS] tokens [SEP] (inference mode)."""
    del batch_stats, constants
    return mean_features(params, batch['tokens'], train=False)

  def finetune(params, batch_stats, batch, rng):
    """`represent` with dropout on (fine-tuning protocols)."""
    return mean_features(params, batch['tokens'], train=True, rng=rng), batch_stats

  unigram = {}  # log p of the training split's unigrams, computed at the first evaluation

  @jax.jit
  def held_out(params, batch, valid, log_unigram, key):
    inputs = prepare(key, batch, {})
    mlm_logits, nsp_logits = forward(params, inputs, train=False)
    weights = inputs['weights'] * valid[:, None]
    targets = inputs['targets']
    ce = optax.softmax_cross_entropy_with_integer_labels(mlm_logits, targets)
    sums = {'ce': jnp.sum(ce * weights), 'count': jnp.sum(weights),
            'unigram': -jnp.sum(log_unigram[targets] * weights)}
    if nsp:
      right = (jnp.argmax(nsp_logits, -1) == inputs['nsp_label']).astype(jnp.float32)
      sums['nsp_right'] = jnp.sum(right * valid)
      sums['rows'] = jnp.sum(valid)
    return sums

  def evaluate(context):
    """mlm_perplexity, unigram_perplexity (and nsp_test_accuracy) on the test split of the
    training corpus; see the module docstring."""
    if 'log_p' not in unigram:
      unigram['log_p'] = unigram_log_probs(context.dataset.train, vocab_size=vocab_size,
                                           pad_id=pad_id).astype(np.float32)
    test = context.dataset.test
    count = min(len(test), int(c.eval_examples))
    batch_size = int(context.config.eval.batch_size)
    sharding = NamedSharding(context.mesh, P('data'))
    log_unigram = jax.device_put(unigram['log_p'], NamedSharding(context.mesh, P()))
    totals = {}
    root = jax.random.key(_EVAL_SEED)
    for start in range(0, count, batch_size):
      rows = np.arange(start, start + batch_size)
      host = test.get_batch(rows % count)  # wrap-around padding, left out by `valid`
      batch = {key: jax.device_put(host[key], sharding)
               for key in ('tokens', 'next_tokens') if key in host}
      valid = jax.device_put((rows < count).astype(np.float32), sharding)
      sums = held_out(context.state.params, batch, valid, log_unigram,
                      jax.random.fold_in(root, start))
      for key, value in jax.device_get(sums).items():
        totals[key] = totals.get(key, 0.0) + float(value)
    targets = max(totals['count'], 1.0)
    results = {'mlm_perplexity': math.exp(totals['ce'] / targets),
               'unigram_perplexity': math.exp(totals['unigram'] / targets)}
    if nsp:
      results['nsp_test_accuracy'] = totals['nsp_right'] / max(totals['rows'], 1.0)
    return results

  return Method(name='bert', views=(), features_dim=encoder.features_dim, init=init, loss=loss,
                encode=None, prepare=prepare, represent=represent, evaluate=evaluate,
                finetune=finetune, online_probe=False)
