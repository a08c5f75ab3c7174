"""Colorization: Lab round trip, the in-gamut bins, soft encoding, class rebalancing, the
annealed mean, the loss against a NumPy weighted cross-entropy, the evaluation's colourings,
and the refusal of grey datasets."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl import data
from jssl.config import ConfigError
from jssl.methods import Batch, TrainInfo
from jssl.methods import colorization as col
from jssl.methods.cmc import rgb_to_lab
from jssl.train.loop import Run
from tiny import tiny_config

EMOJI = data.load_dataset('emoji')
INFO = TrainInfo(num_examples=len(EMOJI.train), num_classes=9, image_channels=3, num_steps=10,
                 dataset=EMOJI)
CENTRES = col.ab_bins(10.0)


def test_lab_round_trip_and_bins_cover_the_gamut():
  rgb = np.random.default_rng(0).uniform(size=(500, 3)).astype(np.float32)
  np.testing.assert_allclose(col.lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=2e-3)
  assert 200 < len(CENTRES) < 320  # the paper's 313 at its sampling
  assert np.all(np.abs(CENTRES) <= 110) and np.all(CENTRES % 10 == 0)
  assert [0.0, 0.0] in CENTRES.tolist()  # grey is one bin
  # Every colour lies within half a cell (in each of a and b) of its nearest bin.
  ab = np.asarray(rgb_to_lab(rgb))[:, 1:]
  nearest = CENTRES[col.nearest_bins(ab, CENTRES, 10.0)]
  assert np.all(np.abs(ab - nearest) <= 5.0 + 1e-4)


def test_soft_encoding_weights_the_nearest_bins():
  ab = jnp.asarray([[3.0, -12.0], [0.0, 0.0]])
  soft = np.asarray(col.soft_encode(ab, jnp.asarray(CENTRES), neighbours=5, sigma=5.0))
  np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-6)
  assert np.all((soft > 0).sum(-1) == 5)
  d2 = ((np.asarray(ab)[:, None] - CENTRES[None]) ** 2).sum(-1)
  for row in range(2):
    order = np.argsort(d2[row])[:5]
    want = np.exp(-d2[row, order] / 50.0)
    np.testing.assert_allclose(soft[row, order], want / want.sum(), rtol=1e-5)


def test_rebalancing_favours_rare_colours_and_keeps_the_expectation():
  rng = np.random.default_rng(1)
  ab = np.concatenate([rng.normal(0, 2, (900, 2)), rng.normal([40, 40], 2, (100, 2))])
  w = col.rebalance_weights(ab, CENTRES, bin_size=10.0, lam=0.5, sigma=5.0)
  grey, red = (int(np.argmin(((CENTRES - c) ** 2).sum(1))) for c in ([0, 0], [40, 40]))
  assert w[red] > w[grey]
  assert np.argmax(w) not in (grey, red)  # colours never seen weigh most
  # E_p~[w] = 1 under the smoothed distribution, and lambda = 1 turns rebalancing off.
  np.testing.assert_allclose(col.rebalance_weights(ab, CENTRES, bin_size=10.0, lam=1.0,
                                                   sigma=5.0), 1.0, rtol=1e-5)


def test_annealed_mean_goes_from_the_mean_to_the_mode():
  logits = jnp.log(jnp.asarray([0.6, 0.4]))
  centres = jnp.asarray([[10.0, 0.0], [-10.0, 0.0]])
  np.testing.assert_allclose(col.annealed_mean(logits, centres, 1.0), [2.0, 0.0], atol=1e-5)
  np.testing.assert_allclose(col.annealed_mean(logits, centres, 0.01), [10.0, 0.0], atol=1e-3)


def _config():
  config = tiny_config('colorization', image_size=16)
  config.colorization.head_hidden = 8
  config.colorization.prior_examples = 64
  config.colorization.eval_examples = 8
  return config


def test_loss_is_the_rebalanced_soft_cross_entropy():
  config = _config()
  method = col.create(config, INFO)
  view = jnp.asarray(EMOJI.train.get_batch(np.arange(8))['image'][:, 8:24, 8:24],
                     jnp.float32) / 255.0
  params, batch_stats, extra = jax.jit(method.init)(jax.random.key(0), view)
  batch = Batch(views=(view,), label=jnp.zeros(8, jnp.int32), index=jnp.arange(8))
  value, out = jax.jit(method.loss)(params, batch_stats, extra, batch, jnp.int32(0),
                                    jax.random.key(1))
  # Reference: the network's logits, the view's ab area-resized to them, NumPy from there.
  logits, _ = jax.jit(lambda p: _logits(config, p, batch_stats, view))(params)
  logits = np.asarray(logits, np.float64)
  size = logits.shape[1]
  ab = jax.image.resize(rgb_to_lab(view)[..., 1:], (8, size, size, 2), 'linear', antialias=True)
  soft = np.asarray(col.soft_encode(ab, jnp.asarray(CENTRES), neighbours=5, sigma=5.0))
  weights = col.rebalance_weights(col._training_ab(EMOJI.train, 64), CENTRES, bin_size=10.0,
                                  lam=0.5, sigma=5.0)
  log_p = logits - logits.max(-1, keepdims=True)
  log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
  want = np.mean(weights[soft.argmax(-1)] * -(soft * log_p).sum(-1))
  np.testing.assert_allclose(value, want, rtol=1e-5)
  assert out.features.shape == (8, method.features_dim)


def _logits(config, params, batch_stats, view):
  from jssl import models  # pylint: disable=g-import-not-at-top
  from jssl.models.resnet import feature_maps  # pylint: disable=g-import-not-at-top
  encoder = models.encoder_from_config(config.model)
  _, state = encoder.apply({'params': params['encoder'], 'batch_stats': batch_stats['encoder']},
                           col.lightness(view), train=True,
                           mutable=['batch_stats', 'intermediates'])
  maps = feature_maps(state['intermediates'])
  head = col.HypercolumnHead(size=maps[1].shape[1], hidden=8, num_bins=len(CENTRES))
  return head.apply({'params': params['head']}, maps), None


def test_evaluation_colours_test_images_and_writes_a_grid(tmp_path):
  config = _config()
  config.num_steps = 2
  run = Run(config, str(tmp_path))
  try:
    run.advance(next(run.iterator))
    results = run.evaluate()
  finally:
    run.iterator.close()
  # The grey baseline is the test images' own mean chroma: computed here independently.
  images = EMOJI.test.get_batch(np.arange(8))['image'].astype(np.float32) / 255.0
  chroma = np.linalg.norm(np.asarray(rgb_to_lab(images))[..., 1:], axis=-1).mean()
  np.testing.assert_allclose(results['colorization_ab_error_grey'], chroma, rtol=1e-4)
  assert 0 < results['colorization_ab_error'] < 150
  assert os.path.exists(tmp_path / 'colorized_step1.png')
  assert 'knn_top1' in results and 'linear_top1' in results


def test_grey_datasets_are_refused():
  config = _config()
  digits = data.load_dataset('digits')
  info = TrainInfo(num_examples=10, num_classes=10, image_channels=1, num_steps=1, dataset=digits)
  with pytest.raises(ConfigError, match='needs colour images'):
    col.create(config, info)
  config.colorization.rebalance_lambda = 2.0
  with pytest.raises(ConfigError, match='rebalance_lambda=2.0 must be in'):
    col.create(config, INFO)
