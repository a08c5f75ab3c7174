"""MAE (jssl/models/vit.py, jssl/methods/mae.py): patchify / unpatchify, the masking's
statistics, an encoder that never sees a masked patch, a decoder that puts every token back at
its patch, the loss of a built run against a hand computation from the same key, the
evaluation (reconstruction_mse, the PNG grid) with the probes and fine-tuning, bad configs."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl.config import ConfigError
from jssl.methods import mae
from jssl.methods.base import EvalContext
from jssl.models import vit
from jssl.train.loop import Run
from jssl.train.step import prepare_inputs
import tiny


def test_patchify_is_raster_order_and_unpatchify_inverts_it():
  images = jax.random.uniform(jax.random.key(0), (2, 8, 6, 3))
  patches = vit.patchify(images, 2)
  assert patches.shape == (2, 12, 12)
  # Patch n = i * 3 + j is the 2x2 block at row 2i, column 2j, flattened (row, column, channel).
  np.testing.assert_array_equal(patches[1, 5], np.asarray(images[1, 2:4, 4:6]).reshape(-1))
  np.testing.assert_array_equal(vit.unpatchify(patches, 2, 8, 6), images)
  with pytest.raises(ValueError, match='does not divide'):
    vit.patchify(images, 4)
  positions = vit.sincos_2d_embedding(8, 3, 4)
  assert positions.shape == (12, 8)
  # Row channels depend on the row only, column channels on the column only; all distinct.
  np.testing.assert_array_equal(positions[0, :4], positions[3, :4])
  np.testing.assert_array_equal(positions[0, 4:], positions[4, 4:])
  assert len({tuple(row) for row in positions.round(6)}) == 12


def test_masking_statistics():
  draws, num_patches, num_keep = 4000, 16, 4
  keep, restore, mask = (np.asarray(a) for a in mae.random_masking(
      jax.random.key(1), draws, num_patches, num_keep))
  assert keep.shape == (draws, num_keep) and restore.shape == mask.shape == (draws, num_patches)
  np.testing.assert_array_equal(mask.sum(axis=1), num_patches - num_keep)  # exactly, per example
  for b in range(0, draws, 397):
    assert sorted(keep[b]) == sorted(np.flatnonzero(mask[b] == 0))
    assert sorted(restore[b]) == list(range(num_patches))  # a permutation
    np.testing.assert_array_equal(restore[b][keep[b]], np.arange(num_keep))  # kept come first
  # A different mask per example: two draws agree with probability 1 / C(16, 4) = 1 / 1820.
  assert np.mean(np.any(mask[1:] != mask[:-1], axis=1)) > 0.99
  # Every position is masked about mask_ratio of the time (std of a frequency: 0.007).
  np.testing.assert_allclose(mask.mean(axis=0), 0.75, atol=0.03)
  assert mae.num_kept(16, 0.75) == 4 and mae.num_kept(16, 0.9) == 2


def test_the_encoder_never_sees_a_masked_patch_and_the_decoder_unshuffles():
  encoder = vit.MAEEncoder(grid=(2, 2), hidden_dim=8, num_layers=1, num_heads=2, mlp_dim=8,
                           position_embedding='learned', class_token=True)
  images = jax.random.uniform(jax.random.key(2), (1, 4, 4, 1))
  keep = jnp.asarray([[3, 0]], jnp.int32)  # patches 1 and 2 masked
  params = encoder.init(jax.random.key(3), vit.patchify(images, 2), keep, train=False)

  def encoded(x):
    return encoder.apply(params, vit.patchify(x, 2), keep, train=False)

  assert jax.eval_shape(encoded, images).shape == (1, 3, 8)  # class token + 2 visible
  grad = np.asarray(jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(encoded(x)))))(images))[0, ..., 0]
  patch_grad = np.abs(vit.patchify(grad[None, ..., None], 2)[0]).sum(-1)
  assert np.all(patch_grad[[1, 2]] == 0)  # exactly zero: masked patches never enter
  assert np.all(patch_grad[[0, 3]] > 0)

  # With no blocks, prediction n is a function of the token placed at patch n only: the one
  # `restore` points to (a visible token, or the mask token for a masked patch).
  decoder = vit.MAEDecoder(grid=(2, 2), patch_dim=3, hidden_dim=4, num_layers=0, num_heads=1,
                           mlp_dim=4)
  tokens = jax.random.normal(jax.random.key(4), (1, 2, 8))
  restore = jnp.asarray([[1, 2, 3, 0]], jnp.int32)  # shuffled order (3, 0, 1, 2), keep (3, 0)
  decoder_params = decoder.init(jax.random.key(5), tokens, restore, train=False)
  jacobian = np.asarray(jax.jit(jax.jacobian(
      lambda t: decoder.apply(decoder_params, t, restore, train=False)))(tokens))
  reach = np.abs(jacobian).sum(axis=(0, 2, 3, 5)) > 0  # [output patch n, input token k]
  np.testing.assert_array_equal(reach, [[False, True], [False, False], [False, False],
                                       [True, False]])


def _config(**section):
  config = tiny.tiny_config('mae', patch_size=2, hidden_dim=8, num_layers=1, num_heads=2,
                            mlp_dim=16, decoder_hidden_dim=8, decoder_num_layers=1,
                            decoder_num_heads=2, decoder_mlp_dim=8, eval_examples=100)
  config.batch_size = 16
  config.num_steps = 4
  config.eval.batch_size = 64
  config.eval.linear_steps = 20
  config.eval.finetune = ('finetune',)
  config.eval.finetune_steps = 4
  config.eval.finetune_batch_size = 16
  config.mae.update(section)
  return config


def test_loss_by_hand_evaluation_probes_and_fine_tuning(tmp_path):
  run = Run(_config(norm_pix=True), str(tmp_path), devices=jax.devices()[:1])
  batch = run.device_batch(next(run.iterator))
  key = jax.random.key(3)
  inputs = prepare_inputs(run.method, key, batch, {})
  # The masks by hand: the argsort of each example's uniform noise, the first 4 of 16 kept.
  noise = np.stack([np.asarray(jax.random.uniform(k, (16,))) for k in jax.random.split(key, 16)])
  keep = np.argsort(noise, axis=1, kind='stable')[:, :4]
  np.testing.assert_array_equal(inputs['keep'], keep)
  mask = np.ones((16, 16))
  np.put_along_axis(mask, keep, 0.0, axis=1)
  np.testing.assert_array_equal(inputs['mask'], mask)

  state = run.state
  value, out = jax.jit(run.method.loss)(state.params, state.batch_stats, state.extra, inputs,
                                        0, jax.random.key(5))
  grey = np.asarray(batch['image'], np.float64) / 255.0
  patches = grey.reshape(16, 4, 2, 4, 2, 1).transpose(0, 1, 3, 2, 4, 5).reshape(16, 16, 4)
  encoder = vit.MAEEncoder(grid=(4, 4), hidden_dim=8, num_layers=1, num_heads=2, mlp_dim=16)
  decoder = vit.MAEDecoder(grid=(4, 4), patch_dim=4, hidden_dim=8, num_layers=1, num_heads=2,
                           mlp_dim=8)

  @jax.jit
  def predict(params, patches, keep, restore):
    tokens = encoder.apply({'params': params['encoder']}, patches, keep, train=False)
    return decoder.apply({'params': params['decoder']}, tokens, restore, train=False)

  restore = np.argsort(np.argsort(noise, axis=1, kind='stable'), axis=1)
  pred = np.asarray(predict(state.params, patches.astype(np.float32), keep, restore), np.float64)
  target = (patches - patches.mean(-1, keepdims=True)) / np.sqrt(patches.var(-1, keepdims=True)
                                                                 + 1e-6)
  want = np.sum(np.mean((pred - target) ** 2, -1) * mask) / mask.sum()
  np.testing.assert_allclose(value, want, rtol=1e-5)
  assert out.features.shape == (16, 8)
  features = run.method.represent(state.params, state.batch_stats, {'image': batch['image']}, {})
  assert features.shape == (16, 8)

  results = run.evaluate()  # at step 0 (the train step is run in test_all_methods.py)
  for name in ('knn_top1', 'linear_top1', 'finetune_top1'):
    assert 0 <= results[name] <= 1, name
  assert 0 < results['reconstruction_mse'] < 1 and results['mae_test_loss'] > 0
  step = int(run.state.step)
  assert os.path.getsize(tmp_path / f'reconstructions_step{step}.png') > 100
  context = EvalContext(state=run.state, dataset=run.dataset, eval_dataset=run.eval_dataset,
                        constants={}, mesh=run.mesh, config=run.config, workdir=None, step=step,
                        features={})
  again = run.method.evaluate(context)  # the same fixed masks of the test images
  assert again['reconstruction_mse'] == results['reconstruction_mse']
  run.iterator.close()


@pytest.mark.parametrize('field, value, match', [
    ('mask_ratio', 0.0, r'mask_ratio=0.0 must be in \(0, 1\)'),
    ('mask_ratio', 1.0, r'mask_ratio=1.0 must be in \(0, 1\)'),
    ('mask_ratio', 0.99, 'at least one must be visible'),
    ('patch_size', 3, 'patch_size=3 does not divide'),
    ('patch_size', 8, 'single patch'),
    ('num_heads', 3, 'divisible by config.mae.num_heads=3'),
    ('position_embedding', 'rope', 'position_embedding'),
    ('decoder_num_layers', 0, 'decoder_num_layers=0 must be a positive integer'),
])
def test_bad_configs_are_refused(field, value, match, tmp_path):
  with pytest.raises(ConfigError, match=match):
    Run(_config(**{field: value}), str(tmp_path), devices=jax.devices()[:1])
