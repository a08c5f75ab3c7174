"""Metric-learning losses as a self-supervised method: triplet or margin contrastive loss.

The classic metric-learning objectives, the triplet loss (Weinberger & Saul 2009; FaceNet,
Schroff et al. 2015) and the margin contrastive loss (Hadsell, Chopra & LeCun 2006), trained
without labels: an identity is an image, and the two augmented views of an image are the only
pair of the same identity. Every other image of the global batch is a candidate negative.

Two views go through the encoder and projector in one interleaved call (BatchNorm over all 2B
views); the projections are L2-normalised to unit embeddings z1 (view 1), z2 (view 2). For
anchor i (z1_i) the positive is z2_i and a negative z2_j, j != i, is mined from the batch by
`mine_negatives` on the Euclidean distances d(z1_i, z2_j) (computed under stop-gradient: the
choice of j is not differentiated; the loss then differentiates through z1_i, z2_i and z2_j):
  * 'hard': the closest other example.
  * 'semi_hard': the closest negative farther from the anchor than its positive (FaceNet's
    semi-hard negatives, which avoid the collapse that the very hardest ones cause early in
    training); when no negative is farther than the positive, the hardest one.
  * 'random': a uniformly drawn other example.

`config.triplet.loss`:
  * 'triplet': `losses.triplet(z1, z2, z2[j], margin)`, mean over anchors of
    max(0, d(a, p) - d(a, n) + margin).
  * 'margin_contrastive': `losses.margin_contrastive` over 2B pairs, the B positive pairs
    (z1_i, z2_i, same=1) and the B mined negative pairs (z1_i, z2_j, same=0).

Choices where the papers leave room: embeddings are unit vectors (as in FaceNet), so distances
lie in [0, 2] and the margins are on that scale (0.5 for triplet, 1.0 for margin contrastive,
tuned on digits); the loss is one-directional (anchors from view 1, candidates from view 2) as
in the classic formulation with a fixed anchor; negatives come from the whole global batch.

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

LOSSES = ('triplet', 'margin_contrastive')
MINING = ('hard', 'semi_hard', 'random')

# Stands in for "excluded" in an argmin over distances (finite: no inf arithmetic).
_EXCLUDED = 1e9


def pairwise_distances(x: jax.Array, y: jax.Array) -> jax.Array:
  """Euclidean distances between all rows: [N, D], [M, D] -> [N, M] (>= 0)."""
  squared = (jnp.sum(jnp.square(x), -1)[:, None] + jnp.sum(jnp.square(y), -1)[None, :]
             - 2.0 * x @ y.T)
  return jnp.sqrt(jnp.maximum(squared, 0.0))


def mine_negatives(distances: jax.Array, *, mining: str,
                   rng: jax.Array | None = None) -> jax.Array:
  """Picks one negative j != i per anchor i from a batch of candidates.

  Args:
    distances: [N, N] with distances[i, j] = d(anchor i, candidate j); candidate i is the
      positive of anchor i, so the diagonal holds the positive distances. N >= 2.
    mining: 'hard' (argmin over j != i), 'semi_hard' (the smallest distances[i, j] with
      j != i that exceeds distances[i, i]; the hard choice where there is none) or 'random'
      (uniform over j != i, needs `rng`).
    rng: key for 'random'.

  Returns:
    [N] int32 indices, never i for row i. No gradient flows through the choice.
  """
  if distances.ndim != 2 or distances.shape[0] != distances.shape[1] or distances.shape[0] < 2:
    raise ValueError(f'mine_negatives expects a square [N, N] distance matrix with N >= 2; got '
                     f'{distances.shape}.')
  n = distances.shape[0]
  distances = jax.lax.stop_gradient(distances)
  rows = jnp.arange(n)
  if mining == 'random':
    if rng is None:
      raise ValueError("mine_negatives: mining='random' needs an rng key.")
    draw = jax.random.randint(rng, (n,), 0, n - 1)
    return (draw + (draw >= rows)).astype(jnp.int32)  # skips i: uniform over the other N - 1
  self_mask = jnp.eye(n, dtype=bool)
  others = jnp.where(self_mask, _EXCLUDED, distances)
  hard = jnp.argmin(others, axis=-1)
  if mining == 'hard':
    return hard.astype(jnp.int32)
  if mining == 'semi_hard':
    positive = jnp.diagonal(distances)
    farther = (distances > positive[:, None]) & ~self_mask
    semi_hard = jnp.argmin(jnp.where(farther, distances, _EXCLUDED), axis=-1)
    return jnp.where(jnp.any(farther, axis=-1), semi_hard, hard).astype(jnp.int32)
  raise ValueError(f'unknown mining {mining!r}; choose one of {MINING}.')


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks `config.triplet`; raises ConfigError."""
  c = config.triplet
  if c.loss not in LOSSES:
    raise ConfigError(f'config.triplet.loss={c.loss!r} is unknown; choose one of {LOSSES}, '
                      "e.g. --config.triplet.loss=triplet.")
  if c.mining not in MINING:
    raise ConfigError(f'config.triplet.mining={c.mining!r} is unknown; choose one of {MINING}, '
                      'e.g. --config.triplet.mining=semi_hard.')
  if not c.margin > 0:
    raise ConfigError(f'config.triplet.margin={c.margin} must be positive; embeddings are unit '
                      'vectors (distances in [0, 2]): e.g. 0.5 for triplet, 1.0 for '
                      'margin_contrastive.')
  if config.batch_size < 2:
    raise ConfigError(f'config.batch_size={config.batch_size} leaves no negatives for the '
                      'triplet method; use at least 2 (e.g. 256).')


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds the method from `config.model`, `config.augment` and `config.triplet`."""
  del info  # nothing depends on the dataset's size
  validate(config)
  c = config.triplet
  model = common.encoder_projector(config)
  views = common.views_for(config, 2, 'triplet')

  def init(rng, images):
    params, batch_stats = common.init_variables(model, rng, images)
    return params, batch_stats, {}

  def loss(params, batch_stats, extra, batch, step, rng):
    del step
    (h, z, _), batch_stats = common.apply_train(model, params, batch_stats,
                                                common.interleave(batch.views))
    z1, z2 = (losses.l2_normalize(v) for v in common.deinterleave(z, 2))
    distances = jax.lax.stop_gradient(pairwise_distances(z1, z2))  # [B, B]
    negative_index = mine_negatives(distances, mining=c.mining, rng=rng)
    z_negative = z2[negative_index]
    if c.loss == 'triplet':
      value = losses.triplet(z1, z2, z_negative, margin=c.margin)
    else:
      ones = jnp.ones(z1.shape[:1], jnp.float32)
      value = losses.margin_contrastive(
          jnp.concatenate([z1, z1]), jnp.concatenate([z2, z_negative]),
          jnp.concatenate([ones, jnp.zeros_like(ones)]), margin=c.margin)
    rows = jnp.arange(z1.shape[0])
    d_positive = jnp.diagonal(distances)
    d_negative = distances[rows, negative_index]
    if c.loss == 'triplet':
      active = d_positive - d_negative + c.margin > 0  # triplets that still cost something
    else:
      active = d_negative < c.margin  # negative pairs still inside the margin
    metrics = {'positive_distance': jnp.mean(d_positive),
               'negative_distance': jnp.mean(d_negative),
               'active_fraction': jnp.mean(active.astype(jnp.float32))}
    return value, LossOutput(batch_stats=batch_stats, extra=extra, metrics=metrics,
                             features=common.deinterleave(h, 2)[0], embeddings=(z1, z2))

  return Method(name='triplet', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=common.encode_fn(model))
