"""BERT's dynamic masking (`mask_tokens`) and the packing of segments (`pack_pair`).

Masking is checked by its statistics over ~10^6 positions (selection rate within 1 % of 0.15,
the 80 / 10 / 10 split within one percentage point), by what it must never do (select special
tokens or padding, replace with a special token), and by its keys (one per example: a row's
result depends on its own tokens and key only). Packing is checked against a naive Python
loop on random variable-length segments, pairs and singles.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.augment.text import mask_tokens, pack_pair, random_ordinary_tokens

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIAL = (PAD, UNK, CLS, SEP, MASK)
VOCAB = 1000


def _packed_rows(rng, batch, length):
  """[CLS] content [SEP] padding rows with a few [UNK]s in the content: int32 [B, L]."""
  tokens = np.zeros((batch, length), np.int32)
  sizes = rng.integers(length // 2, length - 1, size=batch)
  for i, size in enumerate(sizes):
    content = rng.integers(len(SPECIAL), VOCAB, size=size)
    content[rng.random(size) < 0.02] = UNK
    tokens[i, 0], tokens[i, 1:size + 1], tokens[i, size + 1] = CLS, content, SEP
  return tokens


def _mask(key, tokens, rate=0.15):
  return jax.jit(lambda k, t: mask_tokens(k, t, mask_id=MASK, vocab_size=VOCAB,
                                          special_ids=SPECIAL, rate=rate))(key, tokens)


@pytest.fixture(scope='module')
def masked():
  tokens = _packed_rows(np.random.default_rng(0), 8192, 192)
  corrupted, targets, weights = (np.asarray(x) for x in _mask(jax.random.key(0), tokens))
  return tokens, corrupted, targets, weights


def test_selection_rate_and_80_10_10_split(masked):
  tokens, corrupted, targets, weights = masked
  ordinary = ~np.isin(tokens, SPECIAL)
  assert ordinary.sum() >= 10**6
  selected = weights > 0
  rate = selected[ordinary].mean()
  assert abs(rate - 0.15) < 0.0015, rate  # 1 % of 0.15; the standard error is 0.00036
  n = selected.sum()
  to_mask = (corrupted[selected] == MASK).mean()
  kept = (corrupted[selected] == tokens[selected]).mean()
  to_random = ((corrupted[selected] != MASK) & (corrupted[selected] != tokens[selected])).mean()
  # A random replacement equals the original with probability 1 / (VOCAB - 5): counted as kept.
  for name, value, target in (('mask', to_mask, 0.8), ('random', to_random, 0.1 - 0.1 / 995),
                              ('kept', kept, 0.1 + 0.1 / 995)):
    assert abs(value - target) < 0.01, (name, value, n)
  np.testing.assert_array_equal(targets, tokens)  # the targets are the original tokens
  assert set(np.unique(weights)) <= {0.0, 1.0} and weights.dtype == np.float32


def test_specials_and_padding_are_never_selected_or_introduced(masked):
  tokens, corrupted, _, weights = masked
  special = np.isin(tokens, SPECIAL)
  assert special.sum() > 10**5 and (tokens == PAD).sum() > 0 and (tokens == UNK).sum() > 0
  assert not weights[special].any()
  np.testing.assert_array_equal(corrupted[special], tokens[special])
  # Outside [MASK] itself, a corrupted position never holds a special id.
  changed = corrupted != tokens
  assert not np.isin(corrupted[changed & (corrupted != MASK)], SPECIAL).any()
  assert not changed[weights == 0].any()  # only selected positions change


def test_random_ordinary_tokens_cover_the_non_special_ids_uniformly():
  specials = (0, 7, 3, 9, 3)  # unsorted, with a repeat
  values = np.asarray(random_ordinary_tokens(jax.random.key(1), (200_000,), vocab_size=12,
                                             special_ids=specials))
  counts = np.bincount(values, minlength=12)
  assert counts[[0, 3, 7, 9]].sum() == 0
  ordinary = counts[[1, 2, 4, 5, 6, 8, 10, 11]] / values.size
  np.testing.assert_allclose(ordinary, 1 / 8, atol=0.005)


def test_one_key_per_example():
  rng = np.random.default_rng(1)
  tokens = _packed_rows(rng, 16, 64)
  tokens[5] = tokens[4]  # two identical rows
  key = jax.random.key(3)
  corrupted, _, weights = (np.asarray(x) for x in _mask(key, tokens, rate=0.5))
  # Identical rows get different masks: each example has its own key.
  assert not np.array_equal(weights[4], weights[5])
  # Changing one example changes only that example's row.
  other = tokens.copy()
  other[9] = _packed_rows(rng, 1, 64)[0]
  corrupted2, _, weights2 = (np.asarray(x) for x in _mask(key, other, rate=0.5))
  rows = np.arange(16) != 9
  np.testing.assert_array_equal(corrupted2[rows], corrupted[rows])
  np.testing.assert_array_equal(weights2[rows], weights[rows])
  assert not np.array_equal(weights2[9], weights[9])
  # Another key changes every row.
  corrupted3, _, weights3 = (np.asarray(x) for x in _mask(jax.random.key(4), tokens, rate=0.5))
  assert all(not np.array_equal(weights3[i], weights[i]) for i in range(16))


# ------------------------------------------------------------------------------------ packing


def naive_pack(a, b, length_a, length_b):
  """[CLS] a [SEP] (b [SEP]) padded with PAD, and the segment ids, by a Python loop."""
  a = [t for t in a if t != PAD]
  tokens, segments = [CLS] + a + [SEP], [0] * (len(a) + 2)
  total = length_a + 2
  if b is not None:
    b = [t for t in b if t != PAD]
    tokens += b + [SEP]
    segments += [1] * (len(b) + 1)
    total = length_a + length_b + 3
  pad = total - len(tokens)
  return tokens + [PAD] * pad, segments + [0] * pad


def _segments(rng, batch, length):
  rows = np.zeros((batch, length), np.int32)
  sizes = rng.integers(0, length + 1, size=batch)
  sizes[:2] = (0, length)  # an empty segment and a full one
  for i, size in enumerate(sizes):
    rows[i, :size] = rng.integers(len(SPECIAL), VOCAB, size=size)
  return rows


@pytest.mark.parametrize('length_a,length_b', [(7, 5), (6, 6), (5, None), (1, 1)])
def test_pack_pair_matches_a_naive_loop(length_a, length_b):
  rng = np.random.default_rng(length_a * 10 + (length_b or 0))
  a = _segments(rng, 24, length_a)
  b = None if length_b is None else _segments(rng, 24, length_b)[::-1].copy()
  tokens, segments = jax.jit(
      lambda a, b: pack_pair(a, b, cls_id=CLS, sep_id=SEP, pad_id=PAD))(a, b)
  tokens, segments = np.asarray(tokens), np.asarray(segments)
  total = length_a + 2 if b is None else length_a + length_b + 3
  assert tokens.shape == segments.shape == (24, total)
  assert tokens.dtype == segments.dtype == np.int32
  for i in range(24):
    want_tokens, want_segments = naive_pack(a[i], None if b is None else b[i], length_a,
                                            length_b or 0)
    assert tokens[i].tolist() == want_tokens, i
    assert segments[i].tolist() == want_segments, i
