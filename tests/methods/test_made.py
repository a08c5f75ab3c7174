"""MADE (jssl/models/made.py, jssl/methods/made.py): the autoregressive property by the
Jacobian of every output with respect to every input, a normalised distribution (the
probabilities of all 2^D binary images sum to 1), the loss under the mask drawn from the
step's key, the mask-averaged evaluation, bad configs."""

import itertools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl import losses
from jssl.config import ConfigError
from jssl.models.made import MADE, made_masks
from jssl.train.loop import Run
from jssl.train.step import prepare_inputs
import tiny

D, HIDDEN = 6, (10, 7)


def _network_and_params(masks, seed=0):
  network = MADE(num_inputs=D, hidden_sizes=HIDDEN)
  params = network.init(jax.random.key(seed), jnp.zeros((1, D)), masks)['params']
  # Random direct weights (they start at 0) so that every allowed path carries a gradient.
  leaves, tree = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
  params = tree.unflatten([p + 0.5 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
  return network, params


@pytest.mark.parametrize('natural_order', [True, False])
def test_each_output_depends_exactly_on_the_inputs_before_it(natural_order):
  masks = made_masks(jax.random.key(3), D, HIDDEN, natural_order=natural_order)
  network, params = _network_and_params(masks)
  order = np.asarray(masks.order)
  assert sorted(order) == list(range(D))
  if natural_order:
    np.testing.assert_array_equal(order, np.arange(D))
  position = np.argsort(order)  # position[j]: when pixel j is predicted
  x = jax.random.uniform(jax.random.key(4), (D,))
  jacobian = np.asarray(jax.jacobian(lambda v: network.apply({'params': params}, v[None],
                                                             masks)[0][0])(x))  # [out d, in j]
  before = position[None, :] < position[:, None]
  assert np.all(jacobian[~before] == 0)  # never an input at or after the output
  assert np.all(jacobian[before] != 0)  # the direct weights reach every allowed input


def test_the_model_is_a_normalised_distribution_over_binary_images():
  masks = made_masks(jax.random.key(5), D, HIDDEN)
  network, params = _network_and_params(masks, seed=2)
  images = jnp.asarray(list(itertools.product([0.0, 1.0], repeat=D)))  # all 2^D
  logits = network.apply({'params': params}, images, masks)[0]
  total = float(jnp.sum(jnp.exp(-losses.bernoulli_nll(logits, images))))
  np.testing.assert_allclose(total, 1.0, rtol=1e-5)


def _config(**made):
  config = tiny.tiny_config('made', hidden_sizes=(16,), num_masks=3, eval_examples=100,
                            num_samples=4)
  config.batch_size = 16
  config.num_steps = 4
  config.eval.batch_size = 64
  config.made.update(made)
  return config


def test_loss_under_the_drawn_mask_and_the_mask_averaged_evaluation(tmp_path):
  run = Run(_config(), str(tmp_path), devices=jax.devices()[:1])
  batch = run.device_batch(next(run.iterator))
  inputs = prepare_inputs(run.method, jax.random.key(3), batch, {})
  x = np.asarray(inputs['x']).reshape(16, -1)
  assert set(np.unique(x)) <= {0.0, 1.0}
  state = run.state
  rng = jax.random.key(7)
  value, out = run.method.loss(state.params, state.batch_stats, state.extra, inputs, 0, rng)
  index = int(jax.random.randint(rng, (), 0, 3))
  masks = made_masks(jax.random.fold_in(jax.random.key(0), index), 64, (16,))
  logits = MADE(num_inputs=64, hidden_sizes=(16,)).apply({'params': state.params['made']},
                                                         jnp.asarray(x), masks)[0]
  p = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
  want = -np.mean(np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=1))
  np.testing.assert_allclose(value, want, rtol=1e-5)
  np.testing.assert_allclose(out.metrics['bits_per_dim'], want / (64 * np.log(2)), rtol=1e-5)
  assert run.method.represent(state.params, state.batch_stats, {'image': batch['image']},
                              {}).shape == (16, 16)

  for _ in range(3):
    run.advance(next(run.iterator))
  results = run.evaluate()
  assert 0 < results['nll'] < 64 * np.log(2) * 1.5 and results['nll_mask0'] > 0
  np.testing.assert_allclose(results['bits_per_dim'], results['nll'] / (64 * np.log(2)),
                             rtol=1e-9)
  for key in ('knn_top1', 'linear_top1'):
    assert 0 <= results[key] <= 1
  assert os.path.getsize(tmp_path / f'samples_step{int(run.state.step)}.png') > 100
  assert run.evaluate()['nll'] == results['nll']  # fixed binarization of the test images
  run.iterator.close()


def test_bad_configs_are_refused(tmp_path):
  devices = jax.devices()[:1]
  with pytest.raises(ConfigError, match='hidden_sizes'):
    Run(_config(hidden_sizes=()), str(tmp_path), devices=devices)
  with pytest.raises(ConfigError, match='num_masks'):
    Run(_config(num_masks=0), str(tmp_path), devices=devices)
  config = _config()
  config.dataset.image_size = 6
  with pytest.raises(ConfigError, match='image_size=8'):
    Run(config, str(tmp_path), devices=devices)
