"""Losses of generative models: the Gaussian KL of a VAE, a Bernoulli decoder's likelihood.

Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014; Burda, Grosse & Salakhutdinov,
"Importance Weighted Autoencoders", ICLR 2016.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gaussian_kl(mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """KL(N(mean, diag(exp(log_var))) || N(0, I)) of each example, in nats.

  Args:
    mean: [B, Z] posterior means.
    log_var: [B, Z] posterior log-variances.

  Returns:
    [B] float32: 0.5 * sum_z (mean^2 + exp(log_var) - 1 - log_var).
  """
  mean = mean.astype(jnp.float32)
  log_var = log_var.astype(jnp.float32)
  return 0.5 * jnp.sum(jnp.square(mean) + jnp.exp(log_var) - 1.0 - log_var, axis=-1)


def bernoulli_log_likelihood(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """log p(targets | logits) of a factorised Bernoulli decoder, summed per example.

  Args:
    logits: [B, ...] decoder logits.
    targets: [B, ...] in {0, 1} (or probabilities in [0, 1]: the cross-entropy).

  Returns:
    [B] float32 nats: sum over every other axis of t log sigmoid(l) + (1 - t) log sigmoid(-l).
  """
  logits = logits.astype(jnp.float32)
  targets = targets.astype(jnp.float32)
  per_dim = targets * jax.nn.log_sigmoid(logits) + (1.0 - targets) * jax.nn.log_sigmoid(-logits)
  return jnp.sum(per_dim.reshape(per_dim.shape[0], -1), axis=-1)


def bernoulli_nll(logits: jax.Array, x: jax.Array) -> jax.Array:
  """Negative log-likelihood of `x` under factorised Bernoulli `logits`, per example.

  Args:
    logits: [B, ...] decoder logits.
    x: [B, ...] binary data, or grey levels in [0, 1] (then the binary cross-entropy of
      Vincent et al. 2008's autoencoders, whose minimum is the entropy of x, not 0).

  Returns:
    [B] float32 nats: -sum over every other axis of x log sigmoid(l) + (1 - x) log sigmoid(-l).
  """
  return -bernoulli_log_likelihood(logits, x)


def discretized_nll(logits: jax.Array, x: jax.Array) -> jax.Array:
  """Negative log-likelihood of discrete pixel values under per-pixel softmaxes, per example.

  The likelihood of PixelCNN-style models (van den Oord et al. 2016): each sub-pixel's value
  is a category among L levels (256 for 8-bit images, 2 for binarized ones).

  Args:
    logits: [B, ..., L] unnormalised log-probabilities of the L levels of every sub-pixel.
    x: [B, ...] integer levels in [0, L) (the shape of `logits` without its last axis).

  Returns:
    [B] float32 nats: -sum over every sub-pixel of log softmax(logits)[x]. Divide by
    (sub-pixels x ln 2) for bits per dimension.
  """
  if logits.shape[:-1] != x.shape:
    raise ValueError(f'discretized_nll: logits {logits.shape} must be x {x.shape} plus a levels '
                     'axis.')
  log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  picked = jnp.take_along_axis(log_p, x.astype(jnp.int32)[..., None], axis=-1)[..., 0]
  return -jnp.sum(picked.reshape(picked.shape[0], -1), axis=-1)


def gaussian_log_density(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """log N(z; mean, diag(exp(log_var))) summed over the last axis: [..., Z] -> [...]."""
  return -0.5 * jnp.sum(jnp.log(2 * jnp.pi) + log_var
                        + jnp.square(z - mean) * jnp.exp(-log_var), axis=-1)
