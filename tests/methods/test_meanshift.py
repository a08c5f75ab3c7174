"""Mean Shift (MSF): the k-NN loss on a hand-built case, the push-before-search order, the EMA
and bank updates, stop-gradients, the weak target view, config errors and a short digits run."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.config import ConfigError
from jssl.methods import TrainInfo
from jssl.methods import common
from jssl.methods import meanshift
from tiny import BATCH, tiny_config, initialise, unit


def _config(**overrides):
  return tiny_config('meanshift', **{'bank_size': 3 * BATCH, 'predictor_hidden_dim': 16,
                                     **overrides})


INFO = TrainInfo(num_examples=64, num_classes=10, image_channels=1, num_steps=10)


def _setup(config):
  method = meanshift.create(config, INFO)
  # Shifted online network (a visible EMA step); pointer 20: the push wraps around the bank.
  return (method, *initialise(method, [8, 8], shift=0.05,
                              queue_pointer=jnp.asarray(20, jnp.int32)))


def test_mean_shift_loss_hand_built():
  s = 1.0 / math.sqrt(2.0)
  bank = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [s, s], [s, -s]])
  target = jnp.array([[3.0, 0.5], [1.0, -3.0]])
  prediction = jnp.array([[0.0, 5.0], [1.0, 0.0]])
  value, metrics = meanshift.mean_shift_loss(prediction, target, bank, num_neighbours=2)
  # Target 0's two nearest rows are e0 and (s, s); its prediction e1 is at 2 and 2 - 2s.
  # Target 1's are (s, -s) and e0; its prediction e0 is at 2 - 2s and 0.
  np.testing.assert_allclose(value, ((2.0 + 2.0 - 2.0 * s) / 2 + (2.0 - 2.0 * s) / 2) / 2,
                             rtol=1e-6)
  t = unit(target)
  cosines = [t[0] @ [1, 0], t[0] @ [s, s], t[1] @ [s, -s], t[1] @ [1, 0]]
  np.testing.assert_allclose(metrics['neighbour_cosine'], np.mean(cosines), rtol=1e-6)
  # One neighbour: the loss against the single nearest row only.
  value1, _ = meanshift.mean_shift_loss(prediction, target, bank, num_neighbours=1)
  np.testing.assert_allclose(value1, (2.0 + 2.0 - 2.0 * s) / 2, rtol=1e-6)


def test_with_one_neighbour_the_target_is_its_own_neighbour():
  """The batch is enqueued before the search, so k = 1 gives BYOL's ||p - t||² exactly."""
  config = _config(num_neighbours=1, momentum=0.8)
  method, params, batch_stats, extra, batch = _setup(config)
  value, out = jax.jit(method.loss)(params, batch_stats, extra, batch, jnp.int32(0),
                                    jax.random.key(2))
  model = common.encoder_projector(config, predictor_hidden_dim=16)

  @jax.jit
  def embeddings(params, batch_stats, target, views):
    (_, _, p), _ = common.apply_train(model, params, batch_stats, views[0])
    (_, t), _ = common.apply_train(model, target['params'], target['batch_stats'], views[1],
                                   method=common.EncoderProjector.project)
    return p, t

  target_params = out.extra['target']['params']  # after this step's EMA update
  p, t = embeddings(params, batch_stats,
                    {'params': target_params, 'batch_stats': extra['target']['batch_stats']},
                    batch.views)
  expected = np.mean(2.0 - 2.0 * np.sum(unit(p) * unit(t), -1))
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  np.testing.assert_allclose(out.metrics['neighbour_cosine'], 1.0, rtol=1e-5)
  # Searching the bank as it was before the push would give a different loss.
  old_bank = np.asarray(extra['queue'], np.float64)
  before = np.mean([2.0 - 2.0 * unit(p)[i] @ old_bank[np.argmax(old_bank @ unit(t)[i])]
                    for i in range(BATCH)])
  assert abs(before - expected) > 1e-3

  # EMA: target <- 0.8 target + 0.2 online, for encoder and projector only.
  online = common.target_subtree(params)
  ema = jax.tree_util.tree_map(lambda old, new: 0.8 * old + 0.2 * new,
                               extra['target']['params'], online)
  leaves = zip(jax.tree_util.tree_leaves(target_params), jax.tree_util.tree_leaves(ema))
  for got, want in leaves:
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  assert set(target_params) == {'encoder', 'projector'}
  np.testing.assert_allclose(out.metrics['momentum'], 0.8)

  # Bank: rows 20..23 then 0..3 (pointer 20, bank 24, batch 8) hold the unit targets.
  bank = np.asarray(out.extra['queue'])
  rows = np.arange(20, 28) % 24
  np.testing.assert_allclose(bank[rows], unit(t), atol=1e-5)
  others = np.setdiff1d(np.arange(24), rows)
  np.testing.assert_array_equal(bank[others], np.asarray(extra['queue'])[others])
  assert int(out.extra['queue_pointer']) == 4


def test_target_and_bank_get_no_gradient():
  method, params, batch_stats, extra, batch = _setup(_config())

  def loss_of(params, target_params, queue):
    state = {**extra, 'target': {**extra['target'], 'params': target_params}, 'queue': queue}
    return method.loss(params, batch_stats, state, batch, jnp.int32(0), jax.random.key(2))[0]

  grads = jax.jit(jax.grad(loss_of, argnums=(0, 1, 2)))(
      params, extra['target']['params'], extra['queue'])
  grad_params, grad_target, grad_queue = grads
  for leaf in jax.tree_util.tree_leaves((grad_target, grad_queue)):
    np.testing.assert_array_equal(leaf, 0.0)
  for head in ('encoder', 'projector', 'predictor'):
    norm = sum(float(jnp.sum(g**2)) for g in jax.tree_util.tree_leaves(grad_params[head]))
    assert norm > 0.0, head


def test_weak_target_view():
  strong, weak = meanshift.create(_config(), INFO).views
  assert strong.jitter_prob > 0 and strong.brightness > 0
  assert weak.jitter_prob == weak.grayscale_prob == weak.blur_prob == weak.solarize_prob == 0.0
  assert weak.crop_scale == strong.crop_scale and weak.flip_prob == strong.flip_prob
  same = meanshift.create(_config(weak_target_view=False), INFO).views
  assert same[0] == same[1] == strong


@pytest.mark.parametrize('field,value,match', [
    ('bank_size', 20, r'config\.meanshift\.bank_size=20 .* --config\.meanshift\.bank_size=16'),
    ('num_neighbours', 25, r'config\.meanshift\.num_neighbours=25 must be in \[1, bank_size=24\]'),
    ('num_neighbours', 0, r'config\.meanshift\.num_neighbours=0'),
    ('momentum', 1.5, r'config\.meanshift\.momentum=1\.5 must be in \[0, 1\]'),
    ('momentum_schedule', 'linear', r"config\.meanshift\.momentum_schedule='linear' is unknown"),
    ('predictor_hidden_dim', 0, r'config\.meanshift\.predictor_hidden_dim=0'),
])
def test_bad_config_names_the_field(field, value, match):
  with pytest.raises(ConfigError, match=match):
    meanshift.create(_config(**{field: value}), INFO)
