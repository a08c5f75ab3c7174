"""SupCon (Khosla et al. 2020): supervised contrastive learning.

This method is SUPERVISED by definition: it reads `Batch.label`, the class labels of the
training split, and uses them as the positives of its contrastive loss. Its numbers are an
upper reference for the self-supervised methods, not one of them.

Two augmented views of every image go through the encoder and projector (one interleaved call,
so BatchNorm normalises over all 2B views of the global batch, as in SimCLR). The 2B
projections are contrasted with `jssl.losses.supcon`, the paper's L_out form: for each anchor,
every other view in the global batch with the same label is a positive (its own second view
included) and the loss averages -log softmax over those positives. The labels of the 2B views
are `batch.label` repeated for both views.

Choices where the paper leaves room:
  * `config.supcon.use_labels=False` gives each example its own label (its index in the
    training split, distinct within a batch), so the only positive of a view is the other view
    of the same image and the loss is exactly SimCLR's NT-Xent, the self-supervised loss the
    paper generalises. Useful as an ablation; off by default.
  * Temperature 0.1, the paper's value; the paper's much larger batches (up to 6144) are not
    needed on small data, where every class has many members in a batch of 256.
  * The paper's stage 2 (a linear classifier trained with cross-entropy on the frozen encoder)
    is the shared linear evaluation, not part of this method.

State (`extra`): none ({}).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from jssl import losses, models
from jssl.config import ConfigError
from jssl.methods import common
from jssl.methods.base import LossOutput, Method, TrainInfo


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks `config.supcon`; raises ConfigError."""
  c = config.supcon
  if c.temperature <= 0:
    raise ConfigError(f'config.supcon.temperature={c.temperature} must be positive (paper: '
                      '0.1), e.g. --config.supcon.temperature=0.1.')


def view_labels(label: jax.Array, index: jax.Array, *, use_labels: bool) -> jax.Array:
  """Labels of the 2B views [view 1 of every example; view 2 of every example].

  Args:
    label: [B] int class labels.
    index: [B] int positions of the examples in the training split, distinct in a batch.
    use_labels: True: class labels (SupCon); False: each example its own label (SimCLR).

  Returns:
    [2B] int32.
  """
  per_example = label if use_labels else index
  return jnp.concatenate([per_example, per_example]).astype(jnp.int32)


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds SupCon from `config.model`, `config.augment` and `config.supcon`."""
  del info  # nothing depends on the dataset's size
  validate(config)
  c = config.supcon
  model = common.encoder_projector(config)
  views = common.views_for(config, 2, 'SupCon')

  def init(rng, images):
    params, batch_stats = common.init_variables(model, rng, images)
    return params, batch_stats, {}

  def loss(params, batch_stats, extra, batch, step, rng):
    del step, rng  # the loss is deterministic given the views
    (h, z, _), batch_stats = common.apply_train(model, params, batch_stats,
                                                common.interleave(batch.views))
    z1, z2 = common.deinterleave(z, 2)
    labels = view_labels(batch.label, batch.index, use_labels=c.use_labels)
    value = losses.supcon(jnp.concatenate([z1, z2], axis=0), labels,
                          temperature=c.temperature)
    n1 = losses.l2_normalize(jax.lax.stop_gradient(z1))
    n2 = losses.l2_normalize(jax.lax.stop_gradient(z2))
    metrics = {'positive_cosine': jnp.mean(jnp.sum(n1 * n2, axis=-1))}
    return value, LossOutput(batch_stats=batch_stats, extra=extra, metrics=metrics,
                             features=common.deinterleave(h, 2)[0], embeddings=(z1, z2))

  return Method(name='supcon', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=common.encode_fn(model))
