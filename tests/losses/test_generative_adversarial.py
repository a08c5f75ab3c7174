"""gaussian_kl, the Bernoulli likelihood and NLL, the discretized NLL, VQ-VAE's quantiser and the
GAN players' losses against naive references, their gradients, and 8 simulated devices against
one."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads
import pytest

from jssl import losses
import sharding_check

RNG = np.random.default_rng(0)


def test_gaussian_kl_matches_the_closed_form_and_monte_carlo():
  mean = RNG.normal(size=(16, 5)).astype(np.float32)
  log_var = RNG.normal(scale=0.5, size=(16, 5)).astype(np.float32)
  got = np.asarray(losses.gaussian_kl(mean, log_var))
  want = np.zeros(16)
  for b in range(16):
    for z in range(5):
      var = np.exp(float(log_var[b, z]))
      want[b] += 0.5 * (mean[b, z] ** 2 + var - 1.0 - np.log(var))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # A Monte-Carlo estimate of E_q[log q - log p] agrees (independent check of the formula).
  eps = RNG.normal(size=(200000, 5))
  z = mean[0] + np.exp(0.5 * log_var[0]) * eps
  log_q = -0.5 * np.sum(np.log(2 * np.pi) + log_var[0] + eps ** 2, axis=1)
  log_p = -0.5 * np.sum(np.log(2 * np.pi) + z ** 2, axis=1)
  np.testing.assert_allclose(np.mean(log_q - log_p), got[0], rtol=2e-2, atol=1e-2)
  assert got.shape == (16,) and np.all(got >= 0)
  np.testing.assert_allclose(losses.gaussian_kl(np.zeros((2, 3)), np.zeros((2, 3))), 0.0)
  check_grads(lambda m, v: jnp.sum(losses.gaussian_kl(m, v)), (mean[:3], log_var[:3]), order=1,
              modes=['rev'], atol=1e-2, rtol=1e-2)


def test_bernoulli_log_likelihood_and_gaussian_density():
  logits = RNG.normal(size=(4, 3, 3, 1)).astype(np.float32)
  targets = (RNG.random(size=(4, 3, 3, 1)) < 0.5).astype(np.float32)
  p = 1 / (1 + np.exp(-logits.astype(np.float64)))
  want = np.sum(np.where(targets == 1, np.log(p), np.log(1 - p)).reshape(4, -1), axis=1)
  np.testing.assert_allclose(losses.bernoulli_log_likelihood(logits, targets), want, rtol=1e-5)
  z, mean, log_var = (RNG.normal(size=(6, 4)).astype(np.float32) for _ in range(3))
  var = np.exp(log_var.astype(np.float64))
  want = np.sum(-0.5 * np.log(2 * np.pi * var) - (z - mean) ** 2 / (2 * var), axis=-1)
  np.testing.assert_allclose(losses.gaussian_log_density(z, mean, log_var), want, rtol=1e-5)


def test_bernoulli_nll_on_binary_and_grey_targets():
  logits = RNG.normal(size=(5, 4, 4, 1)).astype(np.float32)
  grey = RNG.random(size=(5, 4, 4, 1)).astype(np.float32)
  p = 1 / (1 + np.exp(-logits.astype(np.float64)))
  want = -np.sum((grey * np.log(p) + (1 - grey) * np.log(1 - p)).reshape(5, -1), axis=1)
  got = losses.bernoulli_nll(logits, grey)
  assert got.shape == (5,)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # On grey targets its minimum over the logits is the targets' entropy, reached at l = logit(x).
  best = np.log(grey) - np.log1p(-grey)
  entropy = -np.sum((grey * np.log(grey) + (1 - grey) * np.log(1 - grey)).reshape(5, -1), 1)
  np.testing.assert_allclose(losses.bernoulli_nll(best, grey), entropy, rtol=1e-4)
  check_grads(lambda l: jnp.sum(losses.bernoulli_nll(l, grey[:2])), (logits[:2],), order=1,
              modes=['rev'])


def test_discretized_nll_against_a_loop_over_pixels():
  logits = RNG.normal(size=(3, 2, 2, 1, 5)).astype(np.float32)
  x = RNG.integers(0, 5, size=(3, 2, 2, 1))
  want = np.zeros(3)
  for b, i, j, c in itertools.product(range(3), range(2), range(2), range(1)):
    row = logits[b, i, j, c].astype(np.float64)
    want[b] -= row[x[b, i, j, c]] - np.log(np.sum(np.exp(row)))
  np.testing.assert_allclose(losses.discretized_nll(logits, x), want, rtol=1e-5)
  uniform = losses.discretized_nll(np.zeros((2, 4, 256)), np.zeros((2, 4), np.int32))
  np.testing.assert_allclose(uniform, 4 * np.log(256), rtol=1e-6)  # 8 bits per sub-pixel
  with pytest.raises(ValueError, match='levels'):
    losses.discretized_nll(logits, x[:, :1])


def _vq_inputs():
  z_e = RNG.normal(size=(16, 2, 2, 3)).astype(np.float32)
  codebook = RNG.normal(size=(6, 3)).astype(np.float32)
  return z_e, codebook


def _vq_objective(z_e, codebook):
  """A decoder stand-in (a fixed quadratic of the quantised vectors) plus both VQ terms."""
  out = losses.vq_codebook_losses(z_e, codebook, commitment=0.25)
  return jnp.mean(jnp.square(out.quantized - 0.5)) + out.codebook_loss + out.commitment_loss


def test_vq_codebook_losses_against_a_loop_and_the_straight_through_gradient():
  z_e, codebook = _vq_inputs()
  out = losses.vq_codebook_losses(z_e, codebook, commitment=0.25)
  flat = z_e.reshape(-1, 3).astype(np.float64)
  want_idx, nearest = [], []
  for v in flat:  # the nearest code of each vector, by a loop over the codes
    d = [np.sum((v - e) ** 2) for e in codebook.astype(np.float64)]
    want_idx.append(int(np.argmin(d)))
    nearest.append(codebook[want_idx[-1]])
  nearest = np.asarray(nearest)
  np.testing.assert_array_equal(out.indices, np.asarray(want_idx).reshape(16, 2, 2))
  np.testing.assert_allclose(out.quantized, nearest.reshape(z_e.shape), rtol=1e-6)
  squared = np.mean(np.sum((flat - nearest) ** 2, axis=1))
  np.testing.assert_allclose(out.codebook_loss, squared, rtol=1e-5)
  np.testing.assert_allclose(out.commitment_loss, 0.25 * squared, rtol=1e-5)
  # Straight through: the gradient of f(quantized) reaches z_e as f'(nearest) unchanged; the
  # codebook term moves only the codes, the commitment term only z_e.
  grad_z = jax.grad(lambda z: jnp.sum(jnp.square(losses.vq_codebook_losses(
      z, codebook, commitment=0.25).quantized)))(z_e)
  np.testing.assert_allclose(grad_z, 2 * nearest.reshape(z_e.shape), rtol=1e-5)
  grad_z, grad_e = jax.grad(lambda z, e: losses.vq_codebook_losses(
      z, e, commitment=0.25).codebook_loss, argnums=(0, 1))(z_e, codebook)
  assert np.all(np.asarray(grad_z) == 0) and np.any(np.asarray(grad_e) != 0)
  grad_z, grad_e = jax.grad(lambda z, e: losses.vq_codebook_losses(
      z, e, commitment=0.25).commitment_loss, argnums=(0, 1))(z_e, codebook)
  np.testing.assert_allclose(grad_z, 0.25 * 2 * (z_e - nearest.reshape(z_e.shape)) / 64,
                             rtol=1e-4, atol=1e-7)
  assert np.all(np.asarray(grad_e) == 0)
  with pytest.raises(ValueError, match='codes'):
    losses.vq_codebook_losses(z_e, codebook[:, :2], commitment=0.25)


def test_gan_losses_match_their_definitions():
  real = RNG.normal(size=(32,)).astype(np.float32)
  fake = RNG.normal(size=(24,)).astype(np.float32)
  sigmoid = lambda x: 1 / (1 + np.exp(-x.astype(np.float64)))
  want_d = -np.mean(np.log(sigmoid(real))) - np.mean(np.log(1 - sigmoid(fake)))
  np.testing.assert_allclose(losses.gan_discriminator(real, fake), want_d, rtol=1e-5)
  want_g = -np.mean(np.log(sigmoid(fake)))  # non-saturating: -E log D(G(z))
  np.testing.assert_allclose(losses.gan_generator(fake), want_g, rtol=1e-5)
  # Non-saturating: the gradient stays large where the discriminator rejects fakes (l << 0),
  # where the minimax form log(1 - D) would vanish.
  grad = jax.grad(losses.gan_generator)(jnp.full((4,), -10.0))
  np.testing.assert_allclose(grad, -0.25, rtol=1e-3)
  check_grads(losses.gan_discriminator, (real[:5], fake[:5]), order=1, modes=['rev'])
  check_grads(losses.gan_generator, (fake[:5],), order=1, modes=['rev'])


def test_eight_devices_equal_one():
  mean = RNG.normal(size=(16, 4)).astype(np.float32)
  log_var = RNG.normal(size=(16, 4)).astype(np.float32)
  sharding_check.assert_sharded_equals_single(
      lambda m, v: jnp.mean(losses.gaussian_kl(m, v)), (mean, log_var),
      [(P('data'), P('data'))])
  real = RNG.normal(size=(16,)).astype(np.float32)
  fake = RNG.normal(size=(16,)).astype(np.float32)
  sharding_check.assert_sharded_equals_single(losses.gan_discriminator, (real, fake),
                                              [(P('data'), P('data')), (P('data'), P())])
  sharding_check.assert_sharded_equals_single(losses.gan_generator, (fake,), [(P('data'),)])
  logits = RNG.normal(size=(16, 4, 4, 1)).astype(np.float32)
  grey = RNG.random(size=(16, 4, 4, 1)).astype(np.float32)
  sharding_check.assert_sharded_equals_single(
      lambda l, x: jnp.mean(losses.bernoulli_nll(l, x)), (logits, grey), [(P('data'), P('data'))])
  sharding_check.assert_sharded_equals_single(
      _vq_objective, _vq_inputs(), [(P('data'), P()), (P('data', None, None, None), P(None))])
  levels = RNG.normal(size=(16, 3, 3, 1, 4)).astype(np.float32)
  pixels = RNG.integers(0, 4, size=(16, 3, 3, 1)).astype(np.int32)
  sharding_check.assert_sharded_equals_single(
      lambda l, x: jnp.mean(losses.discretized_nll(l, x)), (levels, pixels),
      [(P('data'), P('data'))], argnums=(0,))


def test_hinge_and_least_squares_kinds_match_loops():
  real = RNG.normal(size=(9,)).astype(np.float64) * 2
  fake = RNG.normal(size=(7,)).astype(np.float64) * 2
  hinge_d = (sum(max(0.0, 1 - r) for r in real) / 9 + sum(max(0.0, 1 + f) for f in fake) / 7)
  np.testing.assert_allclose(losses.gan_discriminator(real, fake, kind='hinge'), hinge_d,
                             rtol=1e-5)
  np.testing.assert_allclose(losses.gan_generator(fake, kind='hinge'), -sum(fake) / 7,
                             rtol=1e-5)
  squares_d = (sum(0.5 * (r - 1)**2 for r in real) / 9 + sum(0.5 * f**2 for f in fake) / 7)
  np.testing.assert_allclose(losses.gan_discriminator(real, fake, kind='least_squares'),
                             squares_d, rtol=1e-5)
  np.testing.assert_allclose(losses.gan_generator(fake, kind='least_squares'),
                             sum(0.5 * (f - 1)**2 for f in fake) / 7, rtol=1e-5)
  for kind in losses.GAN_LOSSES:  # a perfect discriminator costs (nearly) nothing
    assert float(losses.gan_discriminator(np.full(3, 1.0 if kind == 'least_squares' else 20.0),
                                          np.full(3, 0.0 if kind == 'least_squares' else -20.0),
                                          kind=kind)) < 1e-6
  with pytest.raises(ValueError, match="kind='wasserstein' is unknown"):
    losses.gan_generator(fake, kind='wasserstein')


def test_r1_penalty_is_the_mean_squared_input_gradient_norm():
  # D(x) = sum_i w_i x_i^2 per example: grad = 2 w x, so the penalty is mean_b sum (2 w x_b)^2.
  x = RNG.normal(size=(5, 2, 3)).astype(np.float32)
  w = RNG.normal(size=(2, 3)).astype(np.float32)
  disc = lambda images: jnp.sum(w * images**2, axis=(1, 2))
  want = np.mean(np.sum((2 * w * x).reshape(5, -1)**2, axis=1))
  np.testing.assert_allclose(losses.r1_penalty(disc, x), want, rtol=1e-5)
  # It is differentiable in the discriminator's parameters (what the loss trains).
  grad_w = jax.grad(lambda w_: losses.r1_penalty(
      lambda images: jnp.sum(w_ * images**2, axis=(1, 2)), x))(w)
  np.testing.assert_allclose(grad_w, np.mean(8 * w * x**2, axis=0), rtol=1e-4)
  sharding_check.assert_sharded_equals_single(
      lambda w_, x_: losses.r1_penalty(lambda images: jnp.sum(w_ * images**2, axis=(1, 2)), x_),
      (w, np.tile(x, (8, 1, 1))), [(P(), P("data"))])


def test_cycle_consistency_is_the_mean_absolute_round_trip_error():
  x = RNG.normal(size=(4, 3, 3, 2)).astype(np.float32)
  back = RNG.normal(size=(4, 3, 3, 2)).astype(np.float32)
  np.testing.assert_allclose(losses.cycle_consistency(x, back), np.mean(np.abs(x - back)),
                             rtol=1e-6)
  assert float(losses.cycle_consistency(x, x)) == 0.0
  sharding_check.assert_sharded_equals_single(
      losses.cycle_consistency, (np.tile(x, (2, 1, 1, 1)), np.tile(back, (2, 1, 1, 1))),
      [(P('data'), P('data'))])
  with pytest.raises(ValueError, match='differ'):
    losses.cycle_consistency(x, back[:2])
