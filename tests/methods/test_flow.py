"""RealNVP (jssl/models/flow.py, jssl/methods/flow.py): every layer and the whole flow invert
exactly, the masks keep their half, the log-determinant (logit included) is that of the
brute-force Jacobian, the density is normalised (importance sampling), the discrete NLL
against a loop and on 8 devices (the method's whole step on 8 devices is in
test_all_methods.py), the loss of a built Run is the bits/dim recomputed by hand from the
step's key, the evaluation, bad configs."""

import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jssl.config import ConfigError
from jssl.models import flow
from jssl.train.loop import Run
from jssl.train.step import prepare_inputs
import tiny

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'losses'))
import sharding_check  # pylint: disable=g-import-not-at-top,wrong-import-position

ALPHA = 0.05


def _perturbed(variables, seed, scale):
  """`variables` plus Gaussian noise of `scale` (the couplings start as the identity), drawn
  on the host (NumPy: no per-leaf random programs to compile)."""
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(
      lambda v: v + scale * rng.normal(size=v.shape).astype(np.float32), variables)


def _bijection(module, x, seed, scale=0.1):
  """One compiled program: `module` initialised and perturbed, its forward on x, the inverse of
  that, and the Jacobian of the forward at each row of x (float32 [N, D, D]).

  Returns:
    (variables, y, log_det, inverse(y), jacobians).
  """
  variables = _perturbed(jax.jit(module.init)(jax.random.key(seed), x), seed + 1, scale)

  def run(variables, x):
    y, log_det = module.apply(variables, x)
    back = module.apply(variables, y, method=module.inverse)

    def flat(v):
      return module.apply(variables, v.reshape((1,) + x.shape[1:]))[0].reshape(-1)

    jacobians = jax.vmap(jax.jacfwd(flat))(x.reshape(x.shape[0], -1))
    return y, log_det, back, jacobians

  return (variables,) + jax.jit(run)(variables, x)


def _log_abs_det(jacobians):
  return np.linalg.slogdet(np.asarray(jacobians, np.float64))[1]


def test_every_layer_inverts_keeps_its_half_and_has_the_jacobians_log_det():
  x = jax.random.normal(jax.random.key(0), (3, 4, 4, 2))
  mask = np.asarray(flow.checkerboard_mask(4, 4, 0))[..., 0]
  np.testing.assert_array_equal(mask, [[1, 0, 1, 0], [0, 1, 0, 1]] * 2)
  layers = [(flow.CheckerboardCoupling(0, 4, 1), 'checkerboard', 0),
            (flow.CheckerboardCoupling(1, 4, 1), 'checkerboard', 1),
            (flow.ChannelCoupling(0, 4, 1), 'channel', 0),
            (flow.ChannelCoupling(1, 4, 1), 'channel', 1)]
  for seed, (layer, kind, parity) in enumerate(layers):
    _, y, log_det, back, jacobians = _bijection(layer, x, seed)
    np.testing.assert_allclose(back, x, atol=1e-5, err_msg=f'{kind} {parity}')
    if kind == 'checkerboard':
      kept = np.asarray(flow.checkerboard_mask(4, 4, parity), bool)[None].repeat(2, -1)
      kept = np.broadcast_to(kept, x.shape)
    else:
      kept = np.zeros(x.shape, bool)
      kept[..., parity] = True  # channel 0 kept by parity 0, channel 1 by parity 1
    np.testing.assert_array_equal(np.asarray(y)[kept], np.asarray(x)[kept])
    assert np.all(np.abs(np.asarray(y - x)[~kept]) > 0), f'{kind} {parity} left its other half'
    np.testing.assert_allclose(log_det, _log_abs_det(jacobians), rtol=1e-4, atol=1e-4,
                               err_msg=f'{kind} {parity}')

  # Squeeze against a loop over the 2x2 blocks, and its inverse.
  y, log_det = flow.Squeeze().apply({}, x)
  want = np.zeros((3, 2, 2, 8), np.float32)
  for i, j, di, dj, c in np.ndindex(2, 2, 2, 2, 2):
    want[:, i, j, (2 * di + dj) * 2 + c] = x[:, 2 * i + di, 2 * j + dj, c]
  np.testing.assert_array_equal(y, want)
  np.testing.assert_array_equal(log_det, 0.0)
  np.testing.assert_array_equal(flow.Squeeze().apply({}, y, method='inverse'), x)

  # The logit against its formula, its log-det against the derivative, its inverse.
  u = jax.random.uniform(jax.random.key(1), (3, 4, 4, 1))
  y, log_det = flow.LogitTransform(ALPHA).apply({}, u)
  p = ALPHA + (1 - 2 * ALPHA) * np.asarray(u, np.float64)
  np.testing.assert_allclose(y, np.log(p / (1 - p)), rtol=1e-5, atol=1e-5)
  want = np.sum(np.log((1 - 2 * ALPHA) / (p * (1 - p))).reshape(3, -1), axis=1)
  np.testing.assert_allclose(log_det, want, rtol=1e-5)
  np.testing.assert_allclose(flow.LogitTransform(ALPHA).apply({}, y, method='inverse'), u,
                             atol=1e-6)


def test_the_whole_flow_inverts_and_its_log_det_is_the_jacobians():
  model = flow.ImageFlow(image_shape=(4, 4, 1), num_scales=2, features=4, num_blocks=1,
                         checkerboard_couplings=2, channel_couplings=2, final_couplings=2,
                         alpha=ALPHA)
  x = jax.random.uniform(jax.random.key(2), (3, 4, 4, 1))
  _, z, log_det, back, jacobians = _bijection(model, x, seed=3)
  assert z.shape == (3, 16) and log_det.shape == (3,)
  np.testing.assert_allclose(back, x, atol=1e-5)
  np.testing.assert_allclose(log_det, _log_abs_det(jacobians), rtol=1e-5, atol=1e-3)
  # The flow is not the identity (the perturbed couplings do something beyond the logit).
  y = flow.LogitTransform(ALPHA).apply({}, x)[0]
  assert np.max(np.abs(np.sort(np.asarray(z), axis=1)
                       - np.sort(np.asarray(y).reshape(3, -1), axis=1))) > 1e-2


def test_the_density_integrates_to_one():
  # E_q[p / q] = 1 for any proposal q: here q = N(0, 1.5^2 I) in the 4-d space of the flow,
  # whose couplings are perturbed enough that log|det| varies (a missing or wrong term of it
  # moves the mean by far more than the 4 standard errors allowed), not so much that p's tails
  # outgrow q's (which would make the estimate's variance unbounded).
  model = flow.RealNVP(image_shape=(2, 2, 1), num_scales=1, features=4, num_blocks=1,
                       checkerboard_couplings=2, channel_couplings=2, final_couplings=2)
  y = 1.5 * jax.random.normal(jax.random.key(4), (50000, 2, 2, 1))
  variables = _perturbed(jax.jit(model.init)(jax.random.key(5), y[:2]), 6, 0.1)
  z, log_det = jax.jit(lambda v: model.apply(variables, v))(y)
  log_p = -0.5 * np.sum(np.asarray(z, np.float64) ** 2 + np.log(2 * np.pi), 1) + log_det
  flat = np.asarray(y, np.float64).reshape(-1, 4)
  log_q = -0.5 * np.sum((flat / 1.5) ** 2 + np.log(2 * np.pi * 1.5 ** 2), 1)
  weights = np.exp(log_p - log_q)
  assert np.std(log_det) > 0.1  # a flow far from volume preserving
  np.testing.assert_allclose(np.mean(weights), 1.0, atol=4 * np.std(weights) / np.sqrt(5e4))


def test_discrete_nll_against_a_loop_and_on_eight_devices():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(8, 5)).astype(np.float32)
  log_det = rng.normal(size=(8,)).astype(np.float32)
  want = [-(sum(-0.5 * (v * v + math.log(2 * math.pi)) for v in row) + d) + 5 * math.log(256)
          for row, d in zip(z.astype(np.float64), log_det.astype(np.float64))]
  np.testing.assert_allclose(flow.discrete_nll(z, log_det), want, rtol=1e-6)
  np.testing.assert_allclose(flow.discrete_nll(z, log_det, levels=2),
                             np.asarray(want) - 5 * math.log(128), rtol=1e-6)
  sharding_check.assert_sharded_equals_single(
      lambda a, b: jnp.mean(flow.discrete_nll(a, b)), [z, log_det],
      [(P('data'), P('data')), (P(), P('data'))])


def _config(**section):
  config = tiny.tiny_config('flow', num_scales=1, features=4, num_blocks=1,
                            checkerboard_couplings=2, channel_couplings=2, final_couplings=2,
                            eval_examples=100, num_samples=4)
  config.batch_size = 16
  config.num_steps = 4
  config.eval.batch_size = 64
  config.eval.linear_steps = 20
  config.flow.update(section)
  return config


def test_loss_is_the_bits_per_dim_of_the_dequantized_batch_and_evaluation(tmp_path):
  run = Run(_config(), str(tmp_path), devices=jax.devices()[:1])
  batch = run.device_batch(next(run.iterator))
  images = np.asarray(batch['image'])
  rng = jax.random.key(3)
  inputs = prepare_inputs(run.method, rng, batch, {})
  # The dequantization: one key per example, u ~ U[0, 1), x = (k + u) / 256.
  keys = jax.random.split(rng, 16)
  noise = np.stack([np.asarray(jax.random.uniform(k, images.shape[1:])) for k in keys])
  x = np.asarray(inputs['x'])
  np.testing.assert_allclose(x, (images + noise) / 256.0, rtol=1e-6)
  np.testing.assert_array_equal(np.floor(x * 256.0), images)

  state = run.state
  params = _perturbed(state.params, 11, 0.05)  # couplings that are not the identity
  value, out = jax.jit(run.method.loss)(params, state.batch_stats, state.extra, inputs, 0, rng)
  # By hand: the logit in NumPy, the RealNVP part, the N(0, I) prior, the 1/256 scaling.
  p = ALPHA + (1 - 2 * ALPHA) * x.astype(np.float64)
  y = np.log(p / (1 - p))
  logit_log_det = np.sum(np.log((1 - 2 * ALPHA) / (p * (1 - p))).reshape(16, -1), axis=1)
  nvp = flow.RealNVP(image_shape=(8, 8, 1), num_scales=1, features=4, num_blocks=1,
                     checkerboard_couplings=2, channel_couplings=2, final_couplings=2)
  z, flow_log_det = jax.jit(nvp.apply)({'params': params['flow']['flow']},
                                       jnp.asarray(y, jnp.float32))
  z = np.asarray(z, np.float64)
  log_px = (-0.5 * np.sum(z ** 2 + np.log(2 * np.pi), axis=1) + np.asarray(flow_log_det)
            + logit_log_det)
  nll = -log_px + 64 * np.log(256)
  np.testing.assert_allclose(value, np.mean(nll) / (64 * np.log(2)), rtol=1e-5)
  np.testing.assert_allclose(out.metrics['nll'], np.mean(nll), rtol=1e-5)
  np.testing.assert_allclose(out.features, z, rtol=1e-4, atol=1e-4)

  # The representation: z at the bins' centres, deterministic.
  features = jax.jit(run.method.represent)(state.params, state.batch_stats,
                                            {'image': batch['image']}, {})
  model = flow.ImageFlow(image_shape=(8, 8, 1), num_scales=1, features=4, num_blocks=1,
                         checkerboard_couplings=2, channel_couplings=2, final_couplings=2)
  want = jax.jit(model.apply)({'params': state.params['flow']}, (images + 0.5) / 256.0)[0]
  np.testing.assert_allclose(features, want, rtol=1e-6)
  assert features.shape == (16, 64)

  for _ in range(3):
    run.advance(next(run.iterator))
  results = run.evaluate()
  assert 0 < results['bits_per_dim'] < 16 and np.isfinite(results['nll'])
  np.testing.assert_allclose(results['bits_per_dim'], results['nll'] / (64 * math.log(2)),
                             rtol=1e-9)
  for key in ('knn_top1', 'linear_top1'):
    assert 0 <= results[key] <= 1
  assert os.path.getsize(tmp_path / f'samples_step{int(run.state.step)}.png') > 100
  assert run.evaluate()['nll'] == results['nll']  # fixed dequantization of the test images
  run.iterator.close()


def test_bad_configs_are_refused(tmp_path):
  devices = jax.devices()[:1]
  for fields, match in (({'num_scales': 4}, 'num_scales=4'), ({'alpha': 0.5}, 'alpha'),
                        ({'features': 0}, 'features'), ({'num_blocks': -1}, 'num_blocks'),
                        ({'temperature': 0.0}, 'temperature')):
    with pytest.raises(ConfigError, match=match):
      Run(_config(**fields), str(tmp_path), devices=devices)
  config = _config()
  config.dataset.image_size = 6
  with pytest.raises(ConfigError, match='image_size=8'):
    Run(config, str(tmp_path), devices=devices)
