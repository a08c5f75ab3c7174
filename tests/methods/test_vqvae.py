"""VQ-VAE (jssl/methods/vqvae.py) and its PixelCNN prior (jssl/methods/vqvae_prior.py): the EMA
codebook update, dead-code restarts and the optimizer rows they reset against NumPy; a built
run's loss recomputed by hand under both codebook rules; the evaluation; the prior's codes,
loss and two-stage bits/dim against stage one's own evaluation; the prior's causality over the
code grid; bad configs of both stages."""

import json
import math
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jssl.config import ConfigError
from jssl.methods import vqvae
from jssl.methods.base import TrainInfo
from jssl.models.pixelcnn import GatedPixelCNN
from jssl.models.vqvae import VQDecoder, VQEncoder
from jssl.train.loop import Run
from jssl.train.step import prepare_inputs
import stage_one
import tiny

K, D, GRID = 8, 4, 16  # codes, code size, code vectors per 8x8 image (4x4)


def _config(**vqvae_fields):
  config = tiny.tiny_config('vqvae', width=4, code_dim=D, num_codes=K, num_residual=1,
                            eval_examples=64)
  config.batch_size = 16
  config.num_steps = 4
  config.eval.batch_size = 64
  config.vqvae.update(vqvae_fields)
  return config


def _nearest(z, codebook):
  """NumPy: index of the nearest code of every row of z [N, D]."""
  z, codebook = np.asarray(z, np.float64), np.asarray(codebook, np.float64)
  return np.argmin(((z[:, None, :] - codebook[None]) ** 2).sum(-1), axis=1)


def _bernoulli_nll(logits, x):
  p = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
  x = np.asarray(x, np.float64)
  return -np.sum((x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(len(x), -1), axis=1)


def test_ema_update_restarts_and_optimizer_rows_against_numpy():
  rng = np.random.default_rng(0)
  size, total = rng.uniform(0.5, 2, K), rng.normal(size=(K, D))
  z, indices = rng.normal(size=(40, D)), rng.integers(0, K - 2, 40)  # the last two unused
  got = vqvae.ema_codebook_update({'cluster_size': jnp.asarray(size), 'embed_sum': jnp.asarray(total)},
                                  jnp.asarray(z), jnp.asarray(indices), decay=0.9, epsilon=1e-5)
  want_size, want_total = size.copy(), total.copy()
  for k in range(K):
    want_size[k] = 0.9 * size[k] + 0.1 * np.sum(indices == k)
    want_total[k] = 0.9 * total[k] + 0.1 * z[indices == k].sum(axis=0)
  n = want_size.sum()
  smoothed = (want_size + 1e-5) / (n + K * 1e-5) * n
  np.testing.assert_allclose(got['cluster_size'], want_size, rtol=1e-5)
  np.testing.assert_allclose(got['embed_sum'], want_total, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got['codebook'], want_total / smoothed[:, None], rtol=1e-4)

  usage = jnp.asarray([5.0, 0.2, 3.0, 0.0, 1.0, 2.0, 0.99, 4.0])
  recent = jnp.asarray(rng.normal(size=(K, D)), jnp.float32)
  codes, dead = vqvae.restart_dead_codes(jnp.asarray(total, jnp.float32), usage, recent,
                                         threshold=1.0)
  np.testing.assert_array_equal(dead, [False, True, False, True, False, False, True, False])
  np.testing.assert_allclose(codes, np.where(np.asarray(dead)[:, None], recent, total), rtol=1e-6)
  moments = {'mu': {'codebook': jnp.ones((K, D)), 'encoder': {'kernel': jnp.ones((K, D))}}}
  reset = vqvae._zero_rows(moments, 'codebook', dead)  # pylint: disable=protected-access
  np.testing.assert_array_equal(reset['mu']['codebook'][:, 0], np.where(dead, 0.0, 1.0))
  np.testing.assert_array_equal(reset['mu']['encoder']['kernel'], 1.0)


def test_vqvae_loss_by_hand_codebooks_restarts_evaluation_and_its_prior(tmp_path):
  config = _config()
  run = Run(config, str(tmp_path), devices=jax.devices()[:1])
  batch = run.device_batch(next(run.iterator))
  inputs = prepare_inputs(run.method, jax.random.key(3), batch, {})
  x = np.asarray(inputs['x'])
  state = run.state
  value, out = run.method.loss(state.params, state.batch_stats, state.extra, inputs, 0,
                               jax.random.key(4))
  params, codebook = state.params, np.asarray(state.extra['codebook'])
  z_e = VQEncoder(code_dim=D, width=4, num_residual=1).apply({'params': params['encoder']}, x)
  flat = np.asarray(z_e, np.float64).reshape(-1, D)
  indices = _nearest(flat, codebook)
  logits = VQDecoder(width=4, num_residual=1).apply(
      {'params': params['decoder']}, jnp.asarray(codebook[indices].reshape(z_e.shape)))
  commitment = 0.25 * np.mean(np.sum((flat - codebook[indices]) ** 2, axis=1))
  want = np.mean(_bernoulli_nll(logits, x)) + GRID * commitment
  np.testing.assert_allclose(value, want, rtol=1e-5)
  # The EMA state after the step, from cluster sizes 1 and sums equal to the initial codes.
  counts = np.bincount(indices, minlength=K)
  sums = np.stack([flat[indices == k].sum(axis=0) for k in range(K)])
  size, total = 0.99 + 0.01 * counts, 0.99 * codebook + 0.01 * sums
  smoothed = (size + 1e-5) / (size.sum() + K * 1e-5) * size.sum()
  np.testing.assert_allclose(out.extra['codebook'], total / smoothed[:, None], rtol=1e-4,
                             atol=1e-6)
  np.testing.assert_allclose(out.extra['vq']['usage'], 0.99 * 1.0 + 0.01 * counts, rtol=1e-6)
  assert int(out.metrics['codes_used']) == np.sum(counts > 0)
  assert 1.0 <= float(out.metrics['codebook_perplexity']) <= np.sum(counts > 0) + 1e-4

  # The paper's codebook loss instead: the same networks, the codes in params; the loss adds
  # GRID * ||sg(z_e) - e||^2 = GRID * commitment / beta.
  info = TrainInfo(num_examples=len(run.dataset.train), num_classes=10, image_channels=1,
                   num_steps=4, dataset=run.dataset)
  gradient = vqvae.create(_config(ema=False), info)
  _, _, g_extra = gradient.init(jax.random.key(0), None)
  g_params = {**params, 'codebook': jnp.asarray(codebook)}
  g_value, _ = gradient.loss(g_params, {}, g_extra, inputs, 0, jax.random.key(4))
  np.testing.assert_allclose(g_value, want + GRID * commitment / 0.25, rtol=1e-5)
  grads = jax.grad(lambda p: gradient.loss(p, {}, g_extra, inputs, 0, jax.random.key(4))[0])(
      g_params)
  assert np.any(np.asarray(grads['codebook']) != 0)  # the codebook term trains the codes
  assert all(np.any(np.asarray(g) != 0) for g in jax.tree_util.tree_leaves(grads['encoder']))

  # Dead codes restart at an epoch start after the first: in the EMA state, and in params
  # with their optimizer moments zeroed.
  extra = jax.device_get(out.extra)
  extra['vq']['usage'] = np.where(np.arange(K) < 2, 0.0, 5.0).astype(np.float32)
  for epoch, restarted in ((0, 0), (1, 2)):
    _, _, new = run.method.epoch_start(state.params, state.opt_state, extra, None,
                                       jnp.int32(epoch), jax.random.key(0))
    assert int(new['vq']['restarts']) == restarted
  np.testing.assert_array_equal(new['codebook'][:2], extra['vq']['recent'][:2])
  np.testing.assert_array_equal(new['codebook'][2:], extra['codebook'][2:])
  np.testing.assert_array_equal(new['cluster_size'][:2], 1.0)
  np.testing.assert_allclose(new['vq']['usage'][:2], np.mean(extra['vq']['usage']))
  opt_state = jax.tree_util.tree_map(jnp.ones_like, optax.adam(1e-3).init(g_params))
  g_extra = {**g_extra, 'vq': extra['vq']}
  new_params, new_opt, _ = gradient.epoch_start(g_params, opt_state, g_extra, None, jnp.int32(3),
                                                jax.random.key(0))
  np.testing.assert_array_equal(new_params['codebook'][:2], extra['vq']['recent'][:2])
  moments = [(jax.tree_util.keystr(path), leaf)
             for path, leaf in jax.tree_util.tree_leaves_with_path(new_opt)]
  assert len([name for name, _ in moments if "['codebook']" in name]) == 2  # mu and nu
  for name, leaf in moments:  # the restarted codes' moments only are zeroed
    want = np.ones(np.shape(leaf))
    if "['codebook']" in name:
      want[:2] = 0.0
    np.testing.assert_array_equal(leaf, want, err_msg=name)

  for _ in range(3):
    run.advance(next(run.iterator))
  results = run.evaluate()
  nll = results['reconstruction_nll']
  assert 0 < nll < 64 * math.log(2) * 1.5 and 0 < results['reconstruction_mse'] < 1
  np.testing.assert_allclose(results['bits_per_dim_uniform_prior'],
                             (nll + GRID * math.log(K)) / (64 * math.log(2)), rtol=1e-9)
  assert 1 <= results['test_codebook_perplexity'] <= results['test_codes_used'] <= K
  assert 0 <= results['knn_top1'] <= 1 and 0 <= results['linear_top1'] <= 1
  assert os.path.getsize(tmp_path / f'reconstructions_step{int(run.state.step)}.png') > 100

  # Stage two over this run's codes (one test: the trained stage one and its evaluation are
  # this run's, so they are compiled once).
  stage_dir = str(tmp_path / 'stage_one')
  stage_one.save(run, stage_dir)
  run.iterator.close()
  _check_prior(tmp_path, stage_dir, jax.device_get(run.state), results)


def _check_prior(tmp_path, stage_dir, stage_state, stage_results):

  config = tiny.tiny_config('vqvae_prior', features=4, num_layers=2, num_samples=2,
                            eval_examples=64, stage_one_workdir=stage_dir)
  config.batch_size, config.num_steps, config.eval.batch_size = 16, 2, 64
  run = Run(config, str(tmp_path / 'prior'), devices=jax.devices()[:1])
  held = jax.device_get(run.state.extra['stage_one'])
  np.testing.assert_array_equal(held['codebook'], stage_state.extra['codebook'])
  np.testing.assert_array_equal(held['encoder']['to_codes']['kernel'],
                                stage_state.params['encoder']['to_codes']['kernel'])
  batch = run.device_batch(next(run.iterator))
  inputs = prepare_inputs(run.method, jax.random.key(3), batch, {})
  value, out = run.method.loss(run.state.params, {}, run.state.extra, inputs, 0, jax.random.key(0))
  z_e = VQEncoder(code_dim=D, width=4, num_residual=1).apply(
      {'params': held['encoder']}, inputs['x'])
  codes = _nearest(np.asarray(z_e).reshape(-1, D), held['codebook']).reshape(16, 4, 4)
  network = GatedPixelCNN(levels=K, features=4, num_layers=2, first_kernel_size=3,
                          embed_inputs=True)
  logits = np.asarray(network.apply({'params': run.state.params['prior']}, jnp.asarray(codes))[0],
                      np.float64)[..., 0, :]
  log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  picked = np.take_along_axis(log_p, codes[..., None], -1)[..., 0]
  np.testing.assert_allclose(value, -np.mean(picked.reshape(16, -1).sum(-1)), rtol=1e-5)
  assert out.features.shape == (16, 4)

  run.advance(next(run.iterator))
  results = run.evaluate()
  # The same binarized test images and codes as stage one's evaluation: its decoder NLL.
  np.testing.assert_allclose(results['reconstruction_nll'], stage_results['reconstruction_nll'],
                             rtol=1e-6)
  np.testing.assert_allclose(results['bits_per_dim'], (results['prior_nll'] +
                                                       results['reconstruction_nll'])
                             / (64 * math.log(2)), rtol=1e-9)
  assert 0 < results['prior_nll'] < 2 * GRID * math.log(K)
  assert results['uniform_prior_nll'] == pytest.approx(GRID * math.log(K))
  assert os.path.getsize(tmp_path / 'prior' / 'samples_step1.png') > 100
  run.iterator.close()

  # Bad stage ones, refused before anything compiles.
  for name, change, message in (
      ('missing', None, 'not a directory'),
      ('made', lambda c: c.update({'method': 'made'}), "holds a 'made' run"),
      ('size', lambda c: c.update({'dataset.image_size': 16}), 'dataset.image_size=16')):
    bad = str(tmp_path / name)
    if change is not None:
      shutil.copytree(stage_dir, bad)
      record_path = os.path.join(bad, 'run_config.json')
      with open(record_path) as f:
        record = json.load(f)
      change(record['config'])
      with open(record_path, 'w') as f:
        json.dump(record, f)
    config.vqvae_prior.stage_one_workdir = bad
    with pytest.raises(ConfigError, match=message):
      Run(config, str(tmp_path / 'bad'), devices=jax.devices()[:1])


def test_the_prior_over_codes_sees_only_the_codes_before_each_position():
  network = GatedPixelCNN(levels=5, features=4, num_layers=3, first_kernel_size=3,
                          embed_inputs=True)
  codes = jnp.asarray(np.random.default_rng(0).integers(0, 5, (1, 3, 3)))
  params = network.init(jax.random.key(0), codes)['params']
  logits_of = jax.jit(lambda x: network.apply({'params': params}, x)[0])
  base = np.asarray(logits_of(codes)).reshape(9, 5)
  for position in range(9):
    changed = codes.reshape(-1).at[position].set((codes.reshape(-1)[position] + 1) % 5)
    logits = np.asarray(logits_of(changed.reshape(1, 3, 3)))
    differs = np.any(logits.reshape(9, 5) != base, axis=1)
    assert not np.any(differs[:position + 1]), position  # nothing at or before it moves
    if position < 8:
      assert differs[position + 1], position  # the next position sees it


def test_bad_vqvae_configs_are_refused(tmp_path):
  devices = jax.devices()[:1]
  for fields, message in (({'downsamplings': 4}, 'downsamplings=4'),
                          ({'ema_decay': 1.0}, 'ema_decay'), ({'num_codes': 0}, 'num_codes')):
    with pytest.raises(ConfigError, match=message):
      Run(_config(**fields), str(tmp_path), devices=devices)
