"""Tests for jssl.models.transformer: NumPy references, masks, causality, dropout, errors, devices.

Tiny widths (H = 16, L = 8); the published BERT-tiny and GPT-2 sizes are only traced.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jssl.models.transformer import (CausalDecoder, TransformerBlock, TransformerEncoder,
                                     causal_mask, check_tokens, masked_mean, padding_mask)

VOCAB, LENGTH, HIDDEN = 37, 8, 16
TINY = dict(vocab_size=VOCAB, max_length=LENGTH, hidden_dim=HIDDEN, num_heads=2, mlp_dim=32)


def num_params(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def random_tokens(shape, seed=0, low=1):
  return jnp.asarray(np.random.default_rng(seed).integers(low, VOCAB, shape), jnp.int32)


def padded_tokens(seed=0):
  """[4, LENGTH] tokens; row i ends in i padding ids (pad_id 0)."""
  tokens = np.array(random_tokens((4, LENGTH), seed))
  for i in range(4):
    tokens[i, LENGTH - i:] = 0
  return jnp.asarray(tokens)


# --- NumPy references. ---


def np_layer_norm(x, p, eps):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean)**2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * p['scale'] + p['bias']


np_erf = np.vectorize(math.erf)


def np_gelu(x):
  return 0.5 * x * (1 + np_erf(x / np.sqrt(2)))


def np_attention(x, mask, p):
  q = np.einsum('blh,hnd->blnd', x, p['query']['kernel']) + p['query']['bias']
  k = np.einsum('blh,hnd->blnd', x, p['key']['kernel']) + p['key']['bias']
  v = np.einsum('blh,hnd->blnd', x, p['value']['kernel']) + p['value']['bias']
  out = np.zeros_like(q)
  for b in range(x.shape[0]):
    for n in range(q.shape[2]):
      for i in range(x.shape[1]):
        scores = np.array([q[b, i, n] @ k[b, j, n] for j in range(x.shape[1])])
        scores = scores / np.sqrt(q.shape[-1])
        visible = mask[b, 0, i]
        weights = np.where(visible, np.exp(scores - scores[visible].max()), 0.0)
        out[b, i, n] = (weights / weights.sum()) @ v[b, :, n]
  return np.einsum('blnd,ndh->blh', out, p['out']['kernel']) + p['out']['bias']


def np_block(x, mask, p, pre_ln):
  eps = 1e-5 if pre_ln else 1e-12

  def mlp(y):
    y = np_gelu(y @ p['mlp_in']['kernel'] + p['mlp_in']['bias'])
    return y @ p['mlp_out']['kernel'] + p['mlp_out']['bias']

  if pre_ln:
    x = x + np_attention(np_layer_norm(x, p['ln_attention'], eps), mask, p['attention'])
    return x + mlp(np_layer_norm(x, p['ln_mlp'], eps))
  x = np_layer_norm(x + np_attention(x, mask, p['attention']), p['ln_attention'], eps)
  return np_layer_norm(x + mlp(x), p['ln_mlp'], eps)


def as_numpy(tree):
  return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), tree)


def random_variables(module, *args, seed=0, **kwargs):
  """Variables of ``module``'s structure (traced, not run) filled with random values.

  LayerNorm scales ~ 1 + N(0, 0.1^2), everything else ~ N(0, 0.1^2): random biases and LN
  parameters, so their use is checked, and larger weights than the 0.02 init, so that
  attention is far from uniform. Cheaper than a real ``init``, which would be compiled.
  """
  abstract = jax.eval_shape(lambda: module.init(jax.random.key(0), *args, **kwargs))
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    noise = 0.1 * rng.standard_normal(leaf.shape)
    return jnp.asarray(noise + (path[-1].key == 'scale'), jnp.float32)

  return jax.tree_util.tree_map_with_path(fill, abstract)


# --- Tests. ---


def test_param_counts_match_bert_tiny_and_gpt2():
  tokens = jax.ShapeDtypeStruct((1, 8), jnp.int32)

  def count(model):
    return num_params(jax.eval_shape(
        lambda t: model.init(jax.random.key(0), t, train=False), tokens))

  # google/bert_uncased_L-2_H-128_A-2: BertModel has 4,385,920 parameters (embeddings
  # 3,972,864 + 2 layers x 198,272 + pooler 16,512); the MLM head adds its transform
  # (16,512 + LN 256) and the output bias (30,522); the decoder weight is tied.
  bert = TransformerEncoder(vocab_size=30522, max_length=512)
  assert bert.features_dim == 128
  assert count(bert) == 4_385_920 + 16_512 + 256 + 30_522
  # GPT-2 small (124,439,808 parameters; tied output, final LayerNorm, no embedding LN).
  gpt2 = CausalDecoder(vocab_size=50257, max_length=1024, num_layers=12, hidden_dim=768,
                       num_heads=12, mlp_dim=3072)
  assert count(gpt2) == 124_439_808


@pytest.mark.parametrize('pre_ln', [False, True])
def test_block_matches_numpy_reference(pre_ln):
  x = jax.random.normal(jax.random.key(1), (2, 5, HIDDEN))
  tokens = jnp.array([[3, 4, 5, 6, 7], [3, 4, 0, 0, 0]])
  mask = padding_mask(tokens, 0)
  block = TransformerBlock(HIDDEN, 2, 32, dropout_rate=0.1, pre_ln=pre_ln)
  variables = random_variables(block, x, mask, train=False)
  got = jax.jit(lambda v, x, m: block.apply(v, x, m, train=False))(variables, x, mask)
  want = np_block(np.asarray(x, np.float64), np.asarray(mask), as_numpy(variables['params']),
                  pre_ln)
  assert got.shape == (2, 5, HIDDEN) and got.dtype == jnp.float32
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_masks():
  tokens = jnp.array([[0, 5, 6, 0]])
  pad = np.asarray(padding_mask(tokens, 0))[0, 0]
  np.testing.assert_array_equal(pad, [[1, 1, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 1, 1]])
  causal = np.asarray(causal_mask(tokens, 0))[0, 0]
  np.testing.assert_array_equal(causal, [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 1, 1, 1]])
  assert np.all(np.asarray(padding_mask(tokens, None)))
  hidden = np.arange(8.0).reshape(1, 4, 2)
  np.testing.assert_allclose(masked_mean(hidden, tokens, 0), [[(2 + 4) / 2, (3 + 5) / 2]])
  np.testing.assert_allclose(masked_mean(hidden, jnp.zeros((1, 4), int), 0), [[0.0, 0.0]])


class Encoder:
  """A tiny encoder, random variables and its jitted programs, shared by the tests below."""

  def __init__(self):
    self.model = model = TransformerEncoder(**TINY)
    self.variables = random_variables(model, padded_tokens(), train=False)

    @jax.jit
    def everything(variables, tokens, segments):
      hidden = model.apply(variables, tokens, segments, train=False)
      logits = model.apply(variables, hidden, method='mlm_logits')
      cls, mean = model.apply(variables, hidden, tokens, method='pooled')
      return hidden, logits, cls, mean

    self.everything = everything
    self.hidden = jax.jit(lambda v, t: model.apply(v, t, train=False))
    self.train_hidden = jax.jit(
        lambda v, t, key: model.apply(v, t, train=True, rngs={'dropout': key}))


@pytest.fixture(scope='module')
def encoder():
  return Encoder()


def test_encoder_embeddings_heads_and_tied_output_match_numpy(encoder):
  p = as_numpy(encoder.variables['params'])
  assert set(p) == {'embeddings', 'blocks_0', 'blocks_1', 'mlm_dense', 'mlm_ln', 'mlm_bias',
                    'pooler'}
  assert 'final_ln' not in p and 'ln' in p['embeddings']  # Post-LN, as BERT.
  tokens = padded_tokens(1)
  segments = jnp.asarray(np.arange(LENGTH) >= 3, jnp.int32)[None].repeat(4, 0)
  hidden, logits, cls, mean = encoder.everything(encoder.variables, tokens, segments)
  assert hidden.shape == (4, LENGTH, HIDDEN) and hidden.dtype == jnp.float32

  emb = p['embeddings']
  x = (emb['token']['embedding'][np.asarray(tokens)] + emb['position'][None]
       + emb['segment']['embedding'][np.asarray(segments)])
  x = np_layer_norm(x, emb['ln'], 1e-12)
  mask = np.asarray(padding_mask(tokens, 0))
  for i in range(2):
    x = np_block(x, mask, p[f'blocks_{i}'], pre_ln=False)
  np.testing.assert_allclose(hidden, x, rtol=1e-4, atol=1e-4)

  h = np.asarray(hidden, np.float64)
  t = np_layer_norm(np_gelu(h @ p['mlm_dense']['kernel'] + p['mlm_dense']['bias']), p['mlm_ln'],
                    1e-12)
  want = t @ emb['token']['embedding'].T + p['mlm_bias']  # Tied to the input embedding.
  assert logits.shape == (4, LENGTH, VOCAB) and logits.dtype == jnp.float32
  np.testing.assert_allclose(logits, want, rtol=1e-4, atol=1e-4)

  np.testing.assert_allclose(cls, np.tanh(h[:, 0] @ p['pooler']['kernel'] + p['pooler']['bias']),
                             rtol=1e-5, atol=1e-5)
  lengths = LENGTH - np.arange(4)
  want_mean = [h[i, :lengths[i]].mean(0) for i in range(4)]
  np.testing.assert_allclose(mean, want_mean, rtol=1e-5, atol=1e-6)
  # Segment ids matter; omitting them means all zeros.
  no_segments = encoder.hidden(encoder.variables, tokens)
  np.testing.assert_allclose(
      no_segments, encoder.everything(encoder.variables, tokens, jnp.zeros_like(tokens))[0],
      rtol=1e-6, atol=1e-6)
  assert not np.allclose(no_segments, hidden, atol=1e-3)


def test_init_creates_the_heads_parameters():
  """``init`` through ``__call__`` alone creates what `mlm_logits` and `pooled` use."""
  model = TransformerEncoder(**TINY)
  tokens = padded_tokens()

  def use_everything(module, tokens):
    hidden = module(tokens, train=False)
    return module.mlm_logits(hidden), module.pooled(hidden, tokens)

  plain = jax.eval_shape(lambda: model.init(jax.random.key(0), tokens, train=False))
  full = jax.eval_shape(lambda: model.init(jax.random.key(0), tokens, method=use_everything))
  assert (jax.tree_util.tree_structure(plain) == jax.tree_util.tree_structure(full))
  assert {'mlm_dense', 'mlm_ln', 'mlm_bias', 'pooler'} <= set(plain['params'])


def test_padding_is_invisible_to_real_positions(encoder):
  short = random_tokens((4, 5), seed=3)
  long = jnp.concatenate([short, jnp.zeros((4, 3), jnp.int32)], axis=1)
  got = encoder.hidden(encoder.variables, long)
  np.testing.assert_allclose(got[:, :5], encoder.hidden(encoder.variables, short),
                             rtol=1e-5, atol=1e-5)
  # The same tokens as real (non-pad) ids do change the earlier positions.
  other = long.at[:, 5:].set(7)
  assert not np.allclose(encoder.hidden(encoder.variables, other)[:, :5], got[:, :5], atol=1e-3)


def test_dropout_only_in_training(encoder):
  tokens, variables = padded_tokens(2), encoder.variables
  eval_out = encoder.hidden(variables, tokens)  # No rng needed.
  np.testing.assert_array_equal(encoder.hidden(variables, tokens), eval_out)
  key = jax.random.key(5)
  train_out = encoder.train_hidden(variables, tokens, key)
  np.testing.assert_array_equal(encoder.train_hidden(variables, tokens, key), train_out)
  other = encoder.train_hidden(variables, tokens, jax.random.key(6))
  assert not np.allclose(train_out, eval_out, atol=1e-3)
  assert not np.allclose(train_out, other, atol=1e-3)
  with pytest.raises(Exception, match='dropout'):
    jax.eval_shape(lambda: encoder.model.apply(variables, tokens, train=True))


def test_pre_ln_encoder_layout():
  model = TransformerEncoder(**TINY, pre_ln=True, num_segments=0)
  tokens = padded_tokens()
  hidden, variables = jax.jit(
      lambda t: model.init_with_output(jax.random.key(0), t, train=False))(tokens)
  params = variables['params']
  assert 'final_ln' in params
  assert set(params['embeddings']) == {'token', 'position'}  # No segments, no embedding LN.
  # A final LayerNorm with unit scale and zero bias: every position has mean 0, variance 1.
  np.testing.assert_allclose(np.mean(hidden, -1), 0.0, atol=1e-5)
  np.testing.assert_allclose(np.var(hidden, -1), 1.0, rtol=0.05)  # eps 1e-5 vs var ~1e-3.
  # The real init: N(0, 0.02) embeddings and kernels, zero biases.
  embedding = np.asarray(params['embeddings']['token']['embedding'])
  np.testing.assert_allclose(np.std(embedding), 0.02, rtol=0.15)
  np.testing.assert_array_equal(params['blocks_0']['mlp_in']['bias'], 0.0)


def test_errors_name_the_numbers_and_fields(encoder):
  model, variables = encoder.model, encoder.variables
  too_long = random_tokens((1, LENGTH + 1))
  with pytest.raises(ValueError, match=r'length 9 exceeds max_length 8.*model\.max_length'):
    model.apply(variables, too_long, train=False)
  with pytest.raises(ValueError, match=r'length 9 exceeds max_length 8'):  # Inside jit too.
    encoder.hidden(variables, too_long)
  with pytest.raises(ValueError, match=r'\[0, 37\).*model\.vocab_size.*from \d+ to 37'):
    model.apply(variables, random_tokens((1, 4)).at[0, 2].set(VOCAB), train=False)
  with pytest.raises(ValueError, match=r'from -1 to'):
    check_tokens(np.array([[-1, 3]]), vocab_size=VOCAB, max_length=LENGTH)
  with pytest.raises(ValueError, match=r'segment ids must be in \[0, 2\)'):
    model.apply(variables, random_tokens((1, 4)), jnp.full((1, 4), 2), train=False)
  with pytest.raises(ValueError, match='integer ids'):
    model.apply(variables, jnp.ones((1, 4)), train=False)
  with pytest.raises(ValueError, match='divisible by num_heads 3'):
    jax.eval_shape(lambda: TransformerEncoder(**{**TINY, 'num_heads': 3}).init(
        jax.random.key(0), random_tokens((1, 4)), train=False))
  with pytest.raises(ValueError, match='pad_id 40'):
    jax.eval_shape(lambda: CausalDecoder(**TINY, pad_id=40).init(
        jax.random.key(0), random_tokens((1, 4)), train=False))
  # Inside jit the ids are not checked (documented): the lookup gives NaN, which the loop's
  # non-finite guard reports.
  bad = encoder.hidden(variables, padded_tokens().at[0, 0].set(VOCAB))
  assert np.all(np.isnan(bad[0])) and np.all(np.isfinite(bad[1:]))


def test_decoder_is_causal_and_tied():
  model = CausalDecoder(**TINY)
  assert model.features_dim == HIDDEN
  tokens = np.array(random_tokens((3, LENGTH), seed=4))
  tokens[1, :2] = 0  # Left padding: a pad query sees only itself, never later positions.
  tokens[2, -3:] = 0  # Right padding.
  variables = random_variables(model, jnp.asarray(tokens), train=False)
  assert 'final_ln' in variables['params']  # Pre-LN (GPT-2) by default.
  assert 'ln' not in variables['params']['embeddings']

  @jax.jit
  def logits_and_hidden(variables, tokens):
    return (model.apply(variables, tokens, train=False),
            model.apply(variables, tokens, train=False, method='hidden_states'))

  base, hidden = logits_and_hidden(variables, jnp.asarray(tokens))
  assert base.shape == (3, LENGTH, VOCAB) and base.dtype == jnp.float32
  rng = np.random.default_rng(0)
  for t in range(LENGTH):
    changed = tokens.copy()
    changed[:, t] = (tokens[:, t] + rng.integers(1, VOCAB, 3)) % VOCAB  # Any id, pad included.
    out, _ = logits_and_hidden(variables, jnp.asarray(changed))
    np.testing.assert_allclose(out[:, :t], base[:, :t], rtol=0, atol=1e-6)
    assert np.all(np.abs(out[:, t] - base[:, t]).max(-1) > 1e-4)  # Position t does see it.
  embedding = variables['params']['embeddings']['token']['embedding']
  np.testing.assert_allclose(base, hidden @ embedding.T, rtol=1e-5, atol=1e-5)


def test_bfloat16_compute_float32_params_and_outputs(encoder):
  tokens, variables = padded_tokens(5), encoder.variables
  model32 = encoder.model
  model16 = TransformerEncoder(**TINY, dtype=jnp.bfloat16)
  abstract = jax.eval_shape(lambda: model16.init(jax.random.key(0), tokens, train=False))
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(abstract))

  @jax.jit
  def both(variables, tokens):
    outputs = []
    for model in (model32, model16):
      hidden = model.apply(variables, tokens, train=False)
      outputs.append((hidden, model.apply(variables, hidden, method='mlm_logits')))
    return outputs

  (h32, logits32), (h16, logits16) = both(variables, tokens)
  assert h16.dtype == logits16.dtype == jnp.float32
  np.testing.assert_allclose(h16, h32, atol=0.1)
  np.testing.assert_allclose(logits16, logits32, atol=0.1 * np.abs(logits32).max())
  assert not np.array_equal(h16, h32)  # bf16 really is used.


def test_eight_devices_equal_one_loss_and_gradients(encoder):
  """A masked-LM + pooled loss and its gradients, with dropout, batch sharded 8 ways."""
  model, variables = encoder.model, encoder.variables
  tokens = jnp.concatenate([padded_tokens(6), padded_tokens(7)], axis=0)  # [8, L]
  key = jax.random.key(3)

  @jax.jit
  def loss_and_grads(params, tokens):
    def loss(params):
      hidden = model.apply({'params': params}, tokens, train=True, rngs={'dropout': key})
      logits = model.apply({'params': params}, hidden, method='mlm_logits')
      nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), tokens[..., None], -1)
      cls, mean = model.apply({'params': params}, hidden, tokens, method='pooled')
      return jnp.mean(nll) + jnp.mean(cls * mean)
    return jax.value_and_grad(loss)(params)

  loss1, grads1 = loss_and_grads(variables['params'], tokens)
  mesh = Mesh(np.asarray(jax.devices()), ('data',))
  assert mesh.size == 8
  sharded = jax.device_put(tokens, NamedSharding(mesh, P('data')))
  loss8, grads8 = loss_and_grads(variables['params'], sharded)
  np.testing.assert_allclose(loss8, loss1, rtol=1e-5)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                         grads8, grads1)
  leaves = jax.tree_util.tree_leaves(grads1)
  assert all(np.all(np.isfinite(g)) for g in leaves)
  assert all(np.any(g != 0) for g in leaves)  # Every parameter is used by the loss.
