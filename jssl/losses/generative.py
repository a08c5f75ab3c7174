"""Losses of generative models: the Gaussian KL of a VAE, a Bernoulli decoder's likelihood,
per-pixel softmax likelihoods, VQ-VAE's vector quantisation.

Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014; Burda, Grosse & Salakhutdinov,
"Importance Weighted Autoencoders", ICLR 2016; van den Oord, Vinyals & Kavukcuoglu, "Neural
Discrete Representation Learning", NeurIPS 2017.
"""

from __future__ import annotations

from typing import NamedTuple

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


class VQResult(NamedTuple):
  """What `vq_codebook_losses` returns.

  Attributes:
    quantized: [..., D] the nearest codes, with the straight-through gradient: the forward
      value is codebook[indices], the gradient with respect to it flows to `z_e` unchanged.
    indices: [...] int32 index of the nearest code of every vector.
    codebook_loss: scalar, mean over vectors of ||sg(z_e) - e||^2 (moves the codes).
    commitment_loss: scalar, `commitment` * mean over vectors of ||z_e - sg(e)||^2 (keeps the
      encoder's outputs near their codes).
  """
  quantized: jax.Array
  indices: jax.Array
  codebook_loss: jax.Array
  commitment_loss: jax.Array


def vq_codebook_losses(z_e: jax.Array, codebook: jax.Array, *, commitment: float) -> VQResult:
  """Vector quantisation of VQ-VAE (van den Oord, Vinyals & Kavukcuoglu, NeurIPS 2017).

  Every D-vector of `z_e` is replaced by its nearest code in Euclidean distance. The two loss
  terms of the paper's objective are returned separately: the codebook term trains the codes
  (with the EMA update of the paper's appendix it is left out and the codes are set from running
  averages instead), the commitment term the encoder (beta = 0.25 in the paper). Squared
  distances are summed over D and averaged over the vectors.

  Args:
    z_e: [..., D] encoder outputs (e.g. [B, H, W, D]).
    codebook: [K, D] the codes.
    commitment: beta, the weight of the commitment term.

  Returns:
    A `VQResult` (quantized [..., D], indices [...], codebook_loss, commitment_loss).
  """
  if z_e.shape[-1] != codebook.shape[-1] or codebook.ndim != 2:
    raise ValueError(f'vq_codebook_losses: z_e {z_e.shape} must end in the codes\' size D of '
                     f'codebook [K, D] {codebook.shape}.')
  z = jnp.asarray(z_e, jnp.float32)
  codes = jnp.asarray(codebook, jnp.float32)
  flat = z.reshape(-1, z.shape[-1])
  distances = (jnp.sum(jnp.square(flat), axis=-1, keepdims=True) - 2.0 * flat @ codes.T
               + jnp.sum(jnp.square(codes), axis=-1)[None])
  indices = jnp.argmin(distances, axis=-1).astype(jnp.int32)
  nearest = codes[indices].reshape(z.shape)
  codebook_loss = jnp.mean(jnp.sum(jnp.square(jax.lax.stop_gradient(z) - nearest), axis=-1))
  commitment_loss = commitment * jnp.mean(
      jnp.sum(jnp.square(z - jax.lax.stop_gradient(nearest)), axis=-1))
  quantized = z + jax.lax.stop_gradient(nearest - z)
  return VQResult(quantized, indices.reshape(z.shape[:-1]), codebook_loss, commitment_loss)


def mae_loss(pred: jax.Array, target: jax.Array, mask: jax.Array, *,
             norm_pix: bool) -> jax.Array:
  """Masked autoencoder reconstruction loss (He et al., "Masked Autoencoders Are Scalable
  Vision Learners", CVPR 2022): the mean squared error of the masked patches only.

  Args:
    pred: [B, N, P] predicted patches (P = pixels per patch x channels).
    target: [B, N, P] the images' patches (`jssl.models.vit.patchify`).
    mask: [B, N], 1 where the patch was masked (removed from the encoder), 0 where visible.
    norm_pix: normalise each target patch by its own mean and variance over its P values,
      (t - mean) / sqrt(var + 1e-6) (the paper's normalised-pixel target; the population
      variance).

  Returns:
    float32 scalar: sum_{b,n} mask * mean_p (pred - target)^2 / sum_{b,n} mask.
  """
  pred = pred.astype(jnp.float32)
  target = jax.lax.stop_gradient(target.astype(jnp.float32))
  mask = mask.astype(jnp.float32)
  if norm_pix:
    mean = jnp.mean(target, axis=-1, keepdims=True)
    var = jnp.var(target, axis=-1, keepdims=True)
    target = (target - mean) / jnp.sqrt(var + 1e-6)
  per_patch = jnp.mean(jnp.square(pred - target), axis=-1)
  return jnp.sum(per_patch * mask) / jnp.maximum(jnp.sum(mask), 1.0)
