"""BERT (jssl/methods/bert.py) on the real Austen + WordNet corpus at the configs' 8192-id vocabulary
(its tokenizer and tokenisation are cached in $JSSL_CACHE_DIR after the first load) with a
1-layer, 16-wide Transformer and 8-token segments.

Checked: the next-sentence pairs `prepare` builds (IsNext rows keep their own next window,
NotNext rows take another example's, about half each), the masking statistics end to end
through `prepare`, the MLM slots when a sequence has more selected positions than slots, that
the loss decreases over a few steps, the shapes of `represent`, the evaluation hook
(perplexities finite, deterministic, a random model near the vocabulary size), the config
errors, and `Run(abstract=True).trace()` of every variant of experiments/configs/bert.py as
written (8192 ids, 64-token segments, BERT-tiny).
"""

import math
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.config import ConfigError
from jssl.config import load_config
from jssl.methods import TrainInfo
from jssl.methods import bert
from jssl.methods.base import EvalContext
from jssl.train.loop import Run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, 'experiments', 'configs', 'bert.py')
VARIANTS = (None, 'fortunes', 'mlm_only')
VOCAB, LENGTH = 8192, 8  # the configs' vocabulary: one tokenizer (and its cache) for the suite
TOTAL = 2 * LENGTH + 3


def tiny_config(variant=None):
  """A variant of experiments/configs/bert.py shrunk to a 1-layer 16-wide model on 8-token
  segments, probed on fortunes (the smallest labelled set)."""
  config = load_config(CONFIG + (f':{variant}' if variant else ''))
  config.dataset.vocab_size = VOCAB
  config.dataset.max_length = LENGTH
  config.model.num_layers = 1
  config.model.hidden_dim = 16
  config.model.num_heads = 2
  config.model.mlp_dim = 32
  config.model.max_length = TOTAL
  config.bert.max_predictions = 0  # every position: the targets are the whole packed input
  config.bert.eval_examples = 200
  config.batch_size = 32
  config.num_steps = 20
  config.optimizer.base_learning_rate = 0.1  # a peak of 1.25e-2 at batch 32
  config.optimizer.warmup_steps = 1
  config.eval.batch_size = 64
  config.eval.dataset = 'fortunes'
  return config


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  run = Run(tiny_config(), str(tmp_path_factory.mktemp('bert')))
  yield run
  run.iterator.close()


@pytest.fixture(scope='module')
def init_results(run):
  """The evaluation hook at initialisation, twice (before any test trains the run)."""
  return [run.method.evaluate(_context(run)) for _ in range(2)]


@pytest.fixture(scope='module')
def prepare(run):
  return jax.jit(run.method.prepare)


def _context(run):
  return EvalContext(state=run.state, dataset=run.dataset, eval_dataset=run.eval_dataset,
                     constants=run.constants, mesh=run.mesh, config=run.config,
                     workdir=None, step=0, features={})


def _host_batch(run, size=256, seed=0):
  train = run.dataset.train
  indices = np.random.default_rng(seed).choice(len(train), size=size, replace=False)
  batch = train.get_batch(indices)
  batch['index'] = indices.astype(np.int32)
  return batch


def _content(row, pad=0):
  return [int(t) for t in row if t != pad]


# --------------------------------------------------------------------------------- prepare


def test_next_sentence_pairs(run, prepare):
  batch = _host_batch(run)
  tokenizer = run.dataset.tokenizer
  has_next = batch['next_tokens'].any(axis=1)
  assert 0.8 < has_next.mean() < 1.0  # a document's last window has no next window
  shifts = set()
  for seed in range(4):
    inputs = jax.device_get(prepare(jax.random.key(seed), batch, {}))
    packed, segments, label = inputs['targets'], inputs['segment_ids'], inputs['nsp_label']
    assert packed.shape == segments.shape == (256, TOTAL) and label.shape == (256,)
    segment_b = []
    for i in range(256):
      a = _content(batch['tokens'][i])
      assert packed[i, 0] == tokenizer.cls_id and packed[i, len(a) + 1] == tokenizer.sep_id
      assert packed[i, 1:len(a) + 1].tolist() == a
      b = [int(t) for t, s in zip(packed[i], segments[i]) if s == 1]
      assert b and b[-1] == tokenizer.sep_id
      segment_b.append(b[:-1])
      assert segment_b[-1], 'segment B is never empty'
    # IsNext rows keep their own next window; rows without one are always NotNext.
    for i in np.flatnonzero(label == 1):
      assert segment_b[i] == _content(batch['next_tokens'][i])
    assert not label[~has_next].any()
    # NotNext rows take the next window of the example s rows further (its tokens if it has
    # none), with one shift s in [1, B) for the whole batch.
    not_next = np.flatnonzero(label == 0)

    def partner_b(p):
      return _content(batch['next_tokens'][p] if has_next[p] else batch['tokens'][p])

    first = not_next[0]
    fits = [s for s in range(1, 256) if segment_b[first] == partner_b((first + s) % 256)]
    fits = [s for s in fits if all(segment_b[i] == partner_b((i + s) % 256) for i in not_next)]
    assert len(fits) == 1, fits
    shifts.add(fits[0])
    assert all(segment_b[i] != _content(batch['next_tokens'][i]) for i in not_next
               if has_next[i] and has_next[(i + fits[0]) % 256])
    # About half of the examples that have a next window are IsNext (std 0.03).
    assert abs(label[has_next].mean() - 0.5) < 0.12, label[has_next].mean()
  assert len(shifts) > 1  # the shift is drawn anew at every step


def test_masking_statistics_through_prepare(run, prepare):
  batch = _host_batch(run, size=2048, seed=1)
  special = np.asarray(run.dataset.tokenizer.special_ids)
  counts = np.zeros(4)
  for seed in range(6):
    inputs = jax.device_get(prepare(jax.random.key(100 + seed), batch, {}))
    packed, corrupted, weights = inputs['targets'], inputs['tokens'], inputs['weights']
    np.testing.assert_array_equal(inputs['positions'], np.broadcast_to(np.arange(TOTAL),
                                                                       packed.shape))
    ordinary = ~np.isin(packed, special)
    selected = weights > 0
    assert not selected[~ordinary].any()  # [CLS], [SEP], [UNK] and padding never
    assert not (corrupted != packed)[~selected].any()
    changed = selected & (corrupted != packed)
    assert not np.isin(corrupted[changed & (corrupted != run.dataset.tokenizer.mask_id)],
                       special).any()
    counts += [ordinary.sum(), selected.sum(),
               (corrupted[selected] == run.dataset.tokenizer.mask_id).sum(),
               (corrupted[selected] == packed[selected]).sum()]
  positions, chosen, masked, kept = counts
  assert positions > 1.8 * 10**5
  assert abs(chosen / positions - 0.15) < 0.005, chosen / positions  # std 0.0008
  assert abs(masked / chosen - 0.8) < 0.02 and abs(kept / chosen - 0.1) < 0.02, (masked, kept)


def test_prediction_slots_keep_the_first_selected_and_restore_the_rest():
  original = jnp.array([[10, 11, 12, 13, 14, 15], [20, 21, 22, 23, 24, 25]], jnp.int32)
  corrupted = jnp.array([[4, 11, 4, 77, 4, 15], [20, 21, 22, 23, 4, 25]], jnp.int32)
  weights = jnp.array([[1, 0, 1, 1, 1, 0], [0, 0, 0, 0, 1, 0]], jnp.float32)
  inputs, positions, targets, slot_weights = bert.prediction_slots(corrupted, original,
                                                                   weights, 3)
  # Row 0: four selected, three slots: the 4th selected position (4) gets its token back.
  np.testing.assert_array_equal(inputs, [[4, 11, 4, 77, 14, 15], [20, 21, 22, 23, 4, 25]])
  np.testing.assert_array_equal(positions, [[0, 2, 3], [4, 0, 1]])
  np.testing.assert_array_equal(targets, [[10, 12, 13], [24, 20, 21]])
  np.testing.assert_array_equal(slot_weights, [[1, 1, 1], [1, 0, 0]])
  same = bert.prediction_slots(corrupted, original, weights, 6)
  np.testing.assert_array_equal(same[0], corrupted)
  np.testing.assert_array_equal(same[3], weights)


def test_unigram_log_probs_are_add_one_smoothed_counts():
  tokens = np.array([[5, 6, 5, 0], [7, 5, 0, 0]], np.int32)
  source = type('S', (), {'__len__': lambda self: 2,
                          'get_batch': lambda self, i: {'tokens': tokens[i]}})()
  log_p = bert.unigram_log_probs(source, vocab_size=9, pad_id=0)
  counts = np.array([0, 0, 0, 0, 0, 3, 1, 1, 0])
  np.testing.assert_allclose(log_p, np.log((counts + 1) / (5 + 9)))


# ---------------------------------------------------------------------- training, features


def test_evaluate_hook_at_initialisation(init_results):
  first, second = init_results
  assert first == second  # a fixed key: the same pairs and masks at every evaluation
  assert set(first) == {'mlm_perplexity', 'unigram_perplexity', 'nsp_test_accuracy'}
  assert all(math.isfinite(v) for v in first.values())
  assert 1.0 < first['unigram_perplexity'] < VOCAB
  # A random-init model predicts nearly uniformly: a perplexity near the vocabulary size.
  assert 0.7 * VOCAB < first['mlm_perplexity'] < 1.3 * VOCAB, first
  assert 0.3 < first['nsp_test_accuracy'] < 0.7


def test_loss_decreases_and_metrics(run, init_results):
  del init_results  # evaluated before training
  batch = _host_batch(run, size=32, seed=2)
  history = [jax.device_get(run.advance(batch)) for _ in range(12)]
  for metrics in history:
    assert {'loss', 'mlm_loss', 'mlm_accuracy', 'nsp_loss', 'nsp_accuracy'} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())
    np.testing.assert_allclose(metrics['loss'], metrics['mlm_loss'] + metrics['nsp_loss'],
                               rtol=1e-5)
  mlm = [float(m['mlm_loss']) for m in history]
  assert np.mean(mlm[-4:]) < np.mean(mlm[:4]) - 0.3, mlm
  assert int(run.state.nonfinite_step) == -1
  results = run.method.evaluate(_context(run))
  assert all(math.isfinite(v) for v in results.values())
  assert results['mlm_perplexity'] < VOCAB  # it has learnt at least the unigrams


def test_represent_shapes_and_independence_of_the_batch(run):
  test = run.eval_dataset.test
  tokens = test.get_batch(np.arange(64))['tokens']
  assert tokens.shape == (64, LENGTH)
  features, logits = run.feature_fn(run.state.params, run.state.batch_stats,
                                    run.state.probe_params, {'tokens': tokens}, run.constants)
  features = np.asarray(features)
  assert features.shape == (64, 16) and features.dtype == np.float32
  assert logits.shape == (64, run.eval_dataset.num_classes)
  assert np.all(np.isfinite(features)) and np.std(features, axis=0).min() > 0
  # An example's features do not depend on the other examples of its batch.
  shuffled = np.roll(tokens, 5, axis=0)
  again, _ = run.feature_fn(run.state.params, run.state.batch_stats, run.state.probe_params,
                            {'tokens': shuffled}, run.constants)
  np.testing.assert_allclose(np.roll(features, 5, axis=0), again, rtol=1e-5, atol=1e-6)
  assert not run.method.online_probe


# ------------------------------------------------------------------------------ the config


def _info(dataset):
  return TrainInfo(num_examples=len(dataset.train), num_classes=dataset.num_classes,
                   image_channels=0, num_steps=10, dataset=dataset)


@pytest.mark.parametrize('field,value,match', [
    ('model.max_length', TOTAL - 1,
     r'2 \* max_length \+ 3 = 19 positions.*config\.model\.max_length=18.*max_length=19'),
    ('bert.mask_rate', 0.0, r'config\.bert\.mask_rate=0\.0 must be in \(0, 1\)'),
    ('bert.mask_rate', 1.0, r'config\.bert\.mask_rate=1\.0 must be in \(0, 1\)'),
    ('bert.nsp_weight', -0.5, r'config\.bert\.nsp_weight=-0\.5 must be >= 0'),
    ('bert.max_predictions', 2, r'config\.bert\.max_predictions=2 is below'),
    ('model.num_heads', 3, r'hidden_dim=16 must be divisible by config\.model\.num_heads=3'),
    ('batch_size', 1, r'config\.batch_size=1 must be >= 2'),
])
def test_bad_configs_raise_config_errors(run, field, value, match):
  config = tiny_config()
  section, name = field.rsplit('.', 1) if '.' in field else (None, field)
  (config[section] if section else config)[name] = value
  with pytest.raises(ConfigError, match=match):
    bert.create(config, _info(run.dataset))


def test_config_errors_about_the_data(run):
  config = tiny_config()
  tokenizer = types.SimpleNamespace(vocab_size=5, special_ids=(0, 1, 2, 3, 4), path='tiny.json')
  few_ids = types.SimpleNamespace(modality='text', tokenizer=tokenizer, max_length=LENGTH,
                                  train=run.dataset.train, num_classes=7)
  with pytest.raises(ConfigError, match=r'has 5 ids, no more than its 5 special tokens.*'
                                        r'raise --config\.dataset\.vocab_size'):
    bert.create(config, _info(few_ids))
  # NSP needs next windows: a labelled dataset has none (pure MLM trains on it).
  with pytest.raises(ConfigError, match=r'config\.bert\.nsp=True needs.*next_tokens'):
    bert.create(config, _info(run.eval_dataset))
  config.bert.nsp = False
  config.model.max_length = LENGTH + 2  # single segments
  assert bert.create(config, _info(run.eval_dataset)).name == 'bert'
  images = types.SimpleNamespace(modality='image')
  with pytest.raises(ConfigError, match='is not a text dataset'):
    bert.create(config, _info(types.SimpleNamespace(**vars(images), train=[], num_classes=1)))


@pytest.mark.parametrize('variant', VARIANTS)
def test_every_variant_traces(variant, tmp_path):
  config = load_config(CONFIG + (f':{variant}' if variant else ''))
  run = Run(config, str(tmp_path), abstract=True)
  try:
    traced = run.trace()
  finally:
    run.iterator.close()
  metrics = traced['metrics']
  expected = {'loss', 'mlm_loss', 'mlm_accuracy'} | (
      set() if variant == 'mlm_only' else {'nsp_loss', 'nsp_accuracy'})
  assert expected <= set(metrics) and metrics['loss'].shape == ()
  features, logits = traced['features']
  assert features.shape == (config.eval.batch_size, 128)
  assert logits.shape == (config.eval.batch_size, run.eval_dataset.num_classes)
  assert run.eval_dataset.name == ('fortunes' if variant == 'fortunes' else 'wordnet_glosses')
  assert run.method.features_dim == 128
