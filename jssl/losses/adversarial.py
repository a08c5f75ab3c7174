"""The two players' losses of a GAN (Goodfellow et al., "Generative Adversarial Nets", 2014).

The discriminator outputs a logit, D(x) = sigmoid(logit). The generator's loss is the
non-saturating one of the paper (maximise log D(G(z)) rather than minimise log(1 - D(G(z))),
which has vanishing gradients early in training), as DCGAN uses (Radford et al. 2016).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gan_discriminator(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Binary cross-entropy of the discriminator: real -> 1, generated -> 0.

  Args:
    real_logits: [B] logits on real examples.
    fake_logits: [B'] logits on generated examples.

  Returns:
    Scalar: mean_real softplus(-l) + mean_fake softplus(l)
    (= -E log D(x) - E log(1 - D(G(z)))).
  """
  real = jnp.mean(jax.nn.softplus(-real_logits.astype(jnp.float32)))
  fake = jnp.mean(jax.nn.softplus(fake_logits.astype(jnp.float32)))
  return real + fake


def gan_generator(fake_logits: jax.Array) -> jax.Array:
  """Non-saturating generator loss: -E log D(G(z)) = mean softplus(-l).

  Args:
    fake_logits: [B] discriminator logits on generated examples.

  Returns:
    Scalar.
  """
  return jnp.mean(jax.nn.softplus(-fake_logits.astype(jnp.float32)))
