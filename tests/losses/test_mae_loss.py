"""mae_loss (He et al. 2022) against a loop over examples and patches, with and without the
per-patch normalised target; only masked patches count; 8 simulated devices equal one."""

import itertools

import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P
import pytest

from jssl import losses
import sharding_check

RNG = np.random.default_rng(0)


def _reference(pred, target, mask, norm_pix):
  total, count = 0.0, 0.0
  for b, n in itertools.product(range(pred.shape[0]), range(pred.shape[1])):
    if not mask[b, n]:
      continue
    t = target[b, n].astype(np.float64)
    if norm_pix:
      mean = sum(t) / len(t)
      var = sum((v - mean) ** 2 for v in t) / len(t)
      t = (t - mean) / np.sqrt(var + 1e-6)
    total += sum((float(pred[b, n, p]) - t[p]) ** 2 for p in range(len(t))) / len(t)
    count += 1
  return total / count


def _inputs(batch=4, patches=6, dim=5):
  pred = RNG.normal(size=(batch, patches, dim)).astype(np.float32)
  target = RNG.random(size=(batch, patches, dim)).astype(np.float32)
  mask = np.zeros((batch, patches), np.float32)
  for b in range(batch):
    mask[b, RNG.permutation(patches)[:4]] = 1.0
  return pred, target, mask


@pytest.mark.parametrize('norm_pix', [False, True])
def test_mae_loss_matches_a_loop_over_the_masked_patches(norm_pix):
  pred, target, mask = _inputs()
  got = losses.mae_loss(pred, target, mask, norm_pix=norm_pix)
  assert got.shape == ()
  np.testing.assert_allclose(got, _reference(pred, target, mask, norm_pix), rtol=1e-5)
  # Visible patches do not count: changing the prediction there leaves the loss unchanged,
  # changing it at a masked patch does not.
  changed = pred.copy()
  changed[mask == 0] += 3.0
  np.testing.assert_allclose(losses.mae_loss(changed, target, mask, norm_pix=norm_pix), got,
                             rtol=1e-6)
  changed[mask == 1] += 3.0
  assert abs(float(losses.mae_loss(changed, target, mask, norm_pix=norm_pix)) - float(got)) > 1


def test_normalised_targets_are_per_patch_standardised():
  target = RNG.random(size=(2, 3, 16)).astype(np.float32)
  mask = np.ones((2, 3), np.float32)
  standard = (target - target.mean(-1, keepdims=True)) / np.sqrt(target.var(-1, keepdims=True)
                                                                 + 1e-6)
  # Predicting the standardised patch exactly is a loss of 0; predicting the raw one is not.
  assert float(losses.mae_loss(standard, target, mask, norm_pix=True)) < 1e-10
  assert float(losses.mae_loss(target, target, mask, norm_pix=True)) > 0.1
  assert float(losses.mae_loss(target, target, mask, norm_pix=False)) == 0.0


def test_eight_devices_equal_one():
  pred, target, mask = _inputs(batch=16)
  for norm_pix in (False, True):
    sharding_check.assert_sharded_equals_single(
        lambda a, b, m: losses.mae_loss(a, b, m, norm_pix=norm_pix), (pred, target, mask),
        [(P('data'), P('data'), P('data')), (P('data'), P(), P('data'))], argnums=(0,))
