"""Local Aggregation (Zhuang, Zhai & Yamins 2019): pull an embedding towards its close
neighbours relative to its background neighbours.

"Local Aggregation for Unsupervised Learning of Visual Embeddings": one augmented view per
image goes through the encoder and a linear projection (`config.model.projection_layers = 1`,
128-d in the paper) to a unit embedding v_i. A memory bank holds a unit vector per training
example, updated as in InstDisc, m_i <- normalise(0.5 m_i + 0.5 v_i). With
p(j | v) proportional to exp(v . m_j / tau) (tau = 0.07):

- background neighbours B_i: the k bank rows most similar to v_i (k = 4096 on ImageNet);
- close neighbours C_i: the examples that share example i's cluster in at least one of
  `num_kmeans` k-means clusterings of the bank (10 clusterings of 30,000 clusters in the
  authors' released ImageNet configuration), recomputed at the start of every epoch;
- loss_i = -log(sum_{j in C_i and B_i} p(j | v_i) / sum_{j in B_i} p(j | v_i)); the
  normalising constant of p cancels.

Choices where the paper leaves room (following the authors' code where it decides):
- The ratio gets + 1e-7 inside the log, as in the authors' code: an example none of whose
  background neighbours is close (possible, since B_i is found from the new embedding and
  the clusters from the bank) adds -log(1e-7) to the loss and no gradient, instead of +inf.
  Computed stably as -logaddexp(log ratio, log 1e-7).
- B_i may contain the example's own bank row (the top-k is over the whole bank) and C_i
  always contains i, as in the authors' code.
- k-means (`jssl.methods.kmeans`): squared Euclidean distance on the unit bank rows, Faiss's
  random-row initialisation and empty-cluster splitting, `kmeans_iters` Lloyd iterations (the
  authors' 20). It runs in `Method.epoch_start` on the bank (the hook's encoder features are
  not used), `num_kmeans` times with independent keys (`jax.lax.map`, one after the other,
  so memory holds one [N, num_clusters] distance matrix at a time).
  Before the first clustering every example is its own cluster (the authors' initial labels),
  so C_i = {i} and the loss is instance discrimination over the background neighbours.
- Instance-recognition warm-up: the paper initialises LA from a network trained with
  InstDisc's loss for 10 epochs. `instance_warmup_epochs` > 0 trains the first epochs with
  the non-parametric softmax of InstDisc over the whole bank, exactly (the paper's NCE
  approximates this softmax for ImageNet's 1.28 M rows; here the banks are at most 60,000
  rows): loss_i = -log(exp(v_i . m_i / tau) / sum_j exp(v_i . m_j / tau)). The k-means runs
  start at the first epoch after the warm-up; the bank is updated throughout.
- `num_clusters` and `background_neighbours` are capped at the number of training examples
  (tiny smoke-test splits).

State (`extra`): 'bank' [N, D] unit memory-bank rows (random at step 0), 'cluster_labels'
[num_kmeans, N] int32 k-means assignments of every example (row r = arange(N) before the first
clustering), 'epoch' int32, the epoch the last `epoch_start` was called for (selects the
warm-up loss). All of it is checkpointed, so a resumed run continues exactly.

Logged: 'instance_phase' (1 during the warm-up), 'close_neighbours' (mean |C_i and B_i|),
'positive_similarity' (mean cosine of v_i and its bank row).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections

from jssl import losses
from jssl import models
from jssl.config import ConfigError
from jssl.methods import common
from jssl.methods import kmeans as kmeans_lib
from jssl.methods import memory
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo

# Added to the ratio inside the log by the authors' code.
RATIO_EPS = 1e-7
_MASKED = -1e9  # logit of a neighbour outside C_i (far below any v.m / tau)


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks `config.local_aggregation`; raises ConfigError naming the field and a fix."""
  c = config.local_aggregation
  name = 'config.local_aggregation'
  if c.temperature <= 0:
    raise ConfigError(f'{name}.temperature={c.temperature} must be positive (paper: 0.07).')
  if c.background_neighbours < 1:
    raise ConfigError(f'{name}.background_neighbours={c.background_neighbours} must be >= 1 '
                      '(paper: 4096 of ImageNet\'s 1.28 M images), e.g. 256 on digits.')
  if c.num_clusters < 2:
    raise ConfigError(f'{name}.num_clusters={c.num_clusters} must be at least 2 (authors: '
                      '30000 on ImageNet), e.g. 50 on digits.')
  if c.num_kmeans < 1:
    raise ConfigError(f'{name}.num_kmeans={c.num_kmeans} must be >= 1 (paper: 10 '
                      'clusterings).')
  if c.kmeans_iters < 1:
    raise ConfigError(f'{name}.kmeans_iters={c.kmeans_iters} must be >= 1 (authors: 20).')
  if c.kmeans_init not in kmeans_lib.INITS:
    raise ConfigError(f'{name}.kmeans_init={c.kmeans_init!r} is unknown; choose one of '
                      f'{kmeans_lib.INITS}.')
  if not 0.0 <= c.momentum < 1.0:
    raise ConfigError(f'{name}.momentum={c.momentum} must be in [0, 1): with 1 the memory bank '
                      'would never change (paper: 0.5).')
  if c.instance_warmup_epochs < 0:
    raise ConfigError(f'{name}.instance_warmup_epochs={c.instance_warmup_epochs} must be >= 0 '
                      '(0: no warm-up; paper: 10).')


def close_neighbour_mask(index: jax.Array, neighbours: jax.Array,
                         cluster_labels: jax.Array) -> jax.Array:
  """Which neighbours share a cluster with their query's example in any clustering.

  Args:
    index: [B] int examples of the queries.
    neighbours: [B, k] int bank rows (examples) of each query's background neighbours.
    cluster_labels: [M, N] int cluster of every example in each of M clusterings.

  Returns:
    [B, k] bool: neighbour j of query b is in C_b.
  """
  own = cluster_labels[:, index]  # [M, B]
  theirs = cluster_labels[:, neighbours]  # [M, B, k]
  return jnp.any(theirs == own[:, :, None], axis=0)


def local_aggregation_loss(embeddings: jax.Array, bank: jax.Array, index: jax.Array,
                           cluster_labels: jax.Array, *, num_background: int,
                           temperature: float,
                           eps: float = RATIO_EPS) -> tuple[jax.Array, dict[str, jax.Array]]:
  """LA's loss: -mean_i log(P(C_i and B_i | v_i) / P(B_i | v_i) + eps).

  Args:
    embeddings: [B, D] v (normalised here).
    bank: [N, D] unit memory bank (no gradient flows into it).
    index: [B] int examples of the batch.
    cluster_labels: [M, N] int k-means clusters of the bank rows.
    num_background: k, background neighbours per query (the k most cosine-similar rows).
    temperature: tau of p(j | v) ~ exp(v . m_j / tau).
    eps: added to the ratio inside the log (the authors' 1e-7).

  Returns:
    (scalar loss, {'close_neighbours': mean |C_i and B_i|}).
  """
  v = losses.l2_normalize(embeddings.astype(jnp.float32))
  bank = jax.lax.stop_gradient(bank)
  sims = v @ bank.T  # [B, N]
  _, neighbours = jax.lax.top_k(jax.lax.stop_gradient(sims), num_background)  # [B, k]
  logits = jnp.take_along_axis(sims, neighbours, axis=1) / temperature
  close = close_neighbour_mask(index, neighbours, jax.lax.stop_gradient(cluster_labels))
  log_background = jax.nn.logsumexp(logits, axis=-1)
  log_close = jax.nn.logsumexp(jnp.where(close, logits, _MASKED), axis=-1)
  per_example = -jnp.logaddexp(log_close - log_background, math.log(eps))
  metrics = {'close_neighbours': jnp.mean(jnp.sum(close, axis=-1).astype(jnp.float32))}
  return jnp.mean(per_example), metrics


def instance_loss(embeddings: jax.Array, bank: jax.Array, index: jax.Array, *,
                  temperature: float) -> jax.Array:
  """InstDisc's non-parametric softmax over the whole bank, the warm-up loss:
  -mean_i log(exp(v_i . m_i / tau) / sum_j exp(v_i . m_j / tau)).

  Args:
    embeddings: [B, D] v (normalised here).
    bank: [N, D] unit memory bank (no gradient).
    index: [B] int rows of the batch's own examples.
    temperature: tau.
  """
  v = losses.l2_normalize(embeddings.astype(jnp.float32))
  logits = v @ jax.lax.stop_gradient(bank).T / temperature  # [B, N]
  positive = jnp.take_along_axis(logits, index[:, None], axis=1)[:, 0]
  return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - positive)


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds Local Aggregation from `config.model`, `config.augment`, `config.local_aggregation`."""
  validate(config)
  c = config.local_aggregation
  model = common.encoder_projector(config)
  views = common.views_for(config, 1, 'Local Aggregation')
  num_examples = info.num_examples
  num_background = min(c.background_neighbours, num_examples)
  num_clusters = min(c.num_clusters, num_examples)
  warmup = c.instance_warmup_epochs

  def init(rng, images):
    model_rng, bank_rng = jax.random.split(rng)
    params, batch_stats = common.init_variables(model, model_rng, images)
    extra = {
        'bank': memory.init_bank(bank_rng, num_examples, config.model.projection_dim),
        'cluster_labels': jnp.tile(jnp.arange(num_examples, dtype=jnp.int32),
                                   (c.num_kmeans, 1)),
        'epoch': jnp.zeros((), jnp.int32),
    }
    return params, batch_stats, extra

  def cluster_bank(bank, rng):
    """[num_kmeans, N] assignments of `num_kmeans` k-means runs over the bank rows."""
    def one(key):
      return kmeans_lib.kmeans(key, bank, num_clusters=num_clusters, num_iters=c.kmeans_iters,
                               init=c.kmeans_init).assignments

    return jax.lax.map(one, jax.random.split(rng, c.num_kmeans))

  def epoch_start(params, opt_state, extra, features, epoch, rng):
    """Re-clusters the bank (from the first epoch after the warm-up on) and records the
    epoch; `features` is None (see `epoch_features`), params / opt_state are unchanged."""
    del features
    epoch = jnp.asarray(epoch, jnp.int32)
    labels = jax.lax.cond(epoch >= warmup,
                          lambda: cluster_bank(extra['bank'], rng),
                          lambda: extra['cluster_labels'])
    return params, opt_state, {**extra, 'cluster_labels': labels, 'epoch': epoch}

  def loss(params, batch_stats, extra, batch, step, rng):
    del step, rng
    bank = extra['bank']
    (h, z, _), batch_stats = common.apply_train(model, params, batch_stats, batch.views[0])

    def aggregation():
      value, metrics = local_aggregation_loss(
          z, bank, batch.index, extra['cluster_labels'], num_background=num_background,
          temperature=c.temperature)
      return value, metrics['close_neighbours']

    def instance():
      return (instance_loss(z, bank, batch.index, temperature=c.temperature),
              jnp.zeros((), jnp.float32))

    if warmup > 0:
      in_warmup = extra['epoch'] < warmup
      value, close = jax.lax.cond(in_warmup, instance, aggregation)
    else:
      in_warmup = jnp.zeros((), jnp.bool_)
      value, close = aggregation()
    positive = jax.lax.stop_gradient(bank[batch.index])
    new_extra = {**extra, 'bank': memory.bank_update(bank, batch.index, z, momentum=c.momentum)}
    zn = losses.l2_normalize(jax.lax.stop_gradient(z))
    metrics = {'instance_phase': in_warmup.astype(jnp.float32), 'close_neighbours': close,
               'positive_similarity': jnp.mean(jnp.sum(zn * positive, axis=-1))}
    return value, LossOutput(batch_stats=batch_stats, extra=new_extra, metrics=metrics,
                             features=h, embeddings=(z, positive))

  return Method(name='local_aggregation', views=views,
                features_dim=models.features_dim(config.model), init=init, loss=loss,
                encode=common.encode_fn(model), epoch_start=epoch_start,
                epoch_features=lambda epoch: False)  # it clusters the bank, not features
