"""The players' losses of adversarial training: a GAN's (Goodfellow et al., "Generative
Adversarial Nets", 2014) in three kinds, the R1 gradient penalty and CycleGAN's cycle loss.

The discriminator outputs a real-valued score l (for the non-saturating kind a logit, D(x) =
sigmoid(l)). The default generator loss is the paper's non-saturating one (maximise
log D(G(z)) rather than minimise log(1 - D(G(z))), which has vanishing gradients early in
training), as DCGAN uses (Radford et al. 2016).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


GAN_LOSSES = ('non_saturating', 'hinge', 'least_squares')


def _check_kind(kind: str) -> None:
  if kind not in GAN_LOSSES:
    raise ValueError(f'GAN loss kind={kind!r} is unknown; choose one of {list(GAN_LOSSES)}.')


def gan_discriminator(real_logits: jax.Array, fake_logits: jax.Array, *,
                      kind: str = 'non_saturating') -> jax.Array:
  """The discriminator's loss, real examples against generated ones.

  Args:
    real_logits: [B] discriminator outputs on real examples.
    fake_logits: [B'] outputs on generated examples.
    kind: 'non_saturating' (Goodfellow et al. 2014: binary cross-entropy, real -> 1, generated
      -> 0: mean_real softplus(-l) + mean_fake softplus(l) = -E log D(x) - E log(1 - D(G(z))),
      D = sigmoid(l)); 'hinge' (Lim & Ye 2017, as SN-GAN: mean_real relu(1 - l) + mean_fake
      relu(1 + l)); 'least_squares' (LSGAN, Mao et al. 2017, targets a = 0 for generated and
      b = 1 for real: 0.5 mean_real (l - 1)^2 + 0.5 mean_fake l^2).

  Returns:
    Scalar float32.
  """
  _check_kind(kind)
  real, fake = real_logits.astype(jnp.float32), fake_logits.astype(jnp.float32)
  if kind == 'hinge':
    return jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))
  if kind == 'least_squares':
    return 0.5 * jnp.mean(jnp.square(real - 1.0)) + 0.5 * jnp.mean(jnp.square(fake))
  return jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))


def gan_generator(fake_logits: jax.Array, *, kind: str = 'non_saturating') -> jax.Array:
  """The generator's loss on the discriminator's outputs for its samples.

  Args:
    fake_logits: [B] discriminator outputs on generated examples.
    kind: 'non_saturating' (-E log D(G(z)) = mean softplus(-l): the paper's non-saturating
      form); 'hinge' (-mean l, as SN-GAN's generator); 'least_squares' (0.5 mean (l - 1)^2:
      LSGAN's c = 1).

  Returns:
    Scalar float32.
  """
  _check_kind(kind)
  fake = fake_logits.astype(jnp.float32)
  if kind == 'hinge':
    return -jnp.mean(fake)
  if kind == 'least_squares':
    return 0.5 * jnp.mean(jnp.square(fake - 1.0))
  return jnp.mean(jax.nn.softplus(-fake))


def r1_penalty(disc_fn: Callable[[jax.Array], jax.Array], real: jax.Array) -> jax.Array:
  """R1 (Mescheder, Geiger & Nowozin 2018): E_real ||grad_x D(x)||^2, the squared norm of the
  discriminator's gradient with respect to each real input, averaged over the batch. A loss
  adds gamma / 2 times it to the discriminator's.

  Args:
    disc_fn: real [B, ...] -> [B] outputs, each example's a function of that example alone
      (no batch statistics: with BatchNorm in training mode the gradient would mix examples).
    real: [B, ...] real examples.

  Returns:
    Scalar float32: mean over b of sum over the example's elements of (d D(x_b) / d x_b)^2.
  """
  real = jnp.asarray(real, jnp.float32)
  grads = jax.grad(lambda x: jnp.sum(disc_fn(x).astype(jnp.float32)))(real)
  return jnp.mean(jnp.sum(jnp.square(grads).reshape(real.shape[0], -1), axis=-1))


def cycle_consistency(x: jax.Array, x_cycled: jax.Array) -> jax.Array:
  """CycleGAN's cycle loss (Zhu et al. 2017): the L1 distance between inputs and their round
  trips F(G(x)), mean over every element.

  Args:
    x: [B, ...] inputs.
    x_cycled: [B, ...] the same inputs translated to the other domain and back.

  Returns:
    Scalar float32: mean |x - x_cycled|.
  """
  if x.shape != x_cycled.shape:
    raise ValueError(f'cycle_consistency: x {x.shape} and x_cycled {x_cycled.shape} differ.')
  return jnp.mean(jnp.abs(x.astype(jnp.float32) - x_cycled.astype(jnp.float32)))
