"""InstDisc / NPID (Wu, Xiong, Yu & Lin 2018): non-parametric instance discrimination.

"Unsupervised Feature Learning via Non-Parametric Instance Discrimination": every training
image is its own class. One augmented view per image goes through the encoder and a linear
projection (`config.model.projection_layers = 1`, 128-d in the paper) to a unit embedding v.
A memory bank holds one unit vector per training example; the "class weight" of example i is
its bank row m_i, so the classifier is non-parametric. The loss is either

- 'nce' (the paper's noise-contrastive estimation, `jssl.losses.nce`): P(i | v) =
  exp(v.m_i / tau) / Z with uniform noise P_n = 1/N and K noise rows per query; the partition
  constant Z is estimated once, from the first step's batch, as
  Z = N * mean(exp(s / tau)) over that batch's positive and negative similarities s, and is
  fixed afterwards (the paper treats Z as a constant, a Monte-Carlo estimate from the initial
  batch(es)); or
- 'softmax' (`jssl.losses.info_nce`): the non-parametric softmax over the positive and the
  K sampled rows, a cross-entropy with the positive logit first.

After the loss the bank rows of the batch move towards the new embeddings,
m_i <- normalise(momentum * m_i + (1 - momentum) * v_i) (paper: momentum 0.5).

Choices where the paper leaves room:
- The positive is the bank row of the example as it was before this step's update, with no
  gradient (the bank is state, never trained).
- Negatives: K rows per query drawn uniformly with replacement from the whole bank
  (`memory.sample_negatives`), so a query can draw its own row as a "negative" with probability
  1/N per draw, as the NCE noise distribution P_n = 1/N implies. The digits split has only
  1,259 images, so its config draws K = 1024 with replacement (the paper's 4,096 is for
  ImageNet's 1.28 M).
- Z is estimated in log space (log N + logsumexp(s / tau) - log(B (K + 1))) with no gradient,
  and only at the first step whose update is kept: the estimate lives in the state, so a resumed
  run uses the same Z. A step whose loss is non-finite is discarded by the train loop, including
  its estimate, and the next step estimates again.
- The paper's optional proximal regularisation term is not implemented.
- Small data: the digits config uses 'softmax'. With 1,259 images the bank is rewritten every
  5 steps, so after one epoch it holds the first, highly correlated embeddings (cosine roughly
  0.8 at random init) instead of random vectors. Z, estimated from the random bank, is then far
  too small: most negatives get h near 1, NCE's repulsion (a sum of K unnormalised terms) points at
  the bank's common direction and swamps the per-image signal, and the embeddings chase it
  around the sphere (measured: knn_top1 0.78 at random init, 0.45 after 30 epochs, loss rising
  from 9 to ~1000). The softmax's negative weights sum to at most 1 (knn_top1 0.89). On
  ImageNet the bank stays random for a whole epoch of ~5,000 steps, long enough for the
  embeddings to spread before it fills.

State (`extra`): 'bank' [num_examples, projection_dim] unit vectors (random at step 0); for
objective 'nce' also 'log_partition' (float32 log Z, 0 until set) and 'partition_set' (bool,
False until the first step has estimated log Z).

Logged: 'positive_similarity' (mean cosine of v_i and m_i), 'negative_similarity' (mean cosine
to the sampled rows) and, for 'nce', 'log_partition'.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from jssl import losses
from jssl import models
from jssl.config import ConfigError
from jssl.methods import common
from jssl.methods import memory
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo

OBJECTIVES = ('nce', 'softmax')


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks `config.instdisc`; raises ConfigError naming the field and a fix."""
  c = config.instdisc
  if c.objective not in OBJECTIVES:
    raise ConfigError(f'config.instdisc.objective={c.objective!r} is unknown; choose one of '
                      f"{OBJECTIVES} (the paper's is 'nce').")
  if c.num_negatives <= 0:
    raise ConfigError(f'config.instdisc.num_negatives={c.num_negatives} must be positive: each '
                      'query needs noise samples from the memory bank (paper: 4096), e.g. '
                      '--config.instdisc.num_negatives=1024.')
  if not 0.0 <= c.momentum < 1.0:
    raise ConfigError(f'config.instdisc.momentum={c.momentum} must be in [0, 1): with 1 the '
                      'memory bank would never change (paper: 0.5).')
  if c.temperature <= 0:
    raise ConfigError(f'config.instdisc.temperature={c.temperature} must be positive '
                      '(paper: 0.07).')


def estimate_log_partition(query: jax.Array, positive: jax.Array, negatives: jax.Array, *,
                           temperature: float, num_examples: int) -> jax.Array:
  """NPID's one-off estimate log Z = log(num_examples * mean exp(s / temperature)).

  The mean runs over every similarity of the batch, positives and negatives alike.

  Args:
    query: [B, D] embeddings (normalised here).
    positive: [B, D] the examples' bank rows (unit).
    negatives: [B, K, D] sampled bank rows (unit).
    temperature: the loss's temperature.
    num_examples: N, the rows of the bank.

  Returns:
    float32 scalar log Z, with no gradient.
  """
  q = losses.l2_normalize(jax.lax.stop_gradient(query).astype(jnp.float32))
  s_pos = jnp.sum(q * positive, axis=-1, keepdims=True)  # [B, 1]
  s_neg = jnp.einsum('bd,bkd->bk', q, negatives)  # [B, K]
  logits = jnp.concatenate([s_pos, s_neg], axis=-1) / temperature
  return jnp.log(float(num_examples)) + jax.nn.logsumexp(logits) - jnp.log(float(logits.size))


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds InstDisc from `config.model`, `config.augment` and `config.instdisc`."""
  validate(config)
  c = config.instdisc
  model = common.encoder_projector(config)
  views = common.views_for(config, 1, 'InstDisc')
  num_examples = info.num_examples

  def init(rng, images):
    model_rng, bank_rng = jax.random.split(rng)
    params, batch_stats = common.init_variables(model, model_rng, images)
    extra = {'bank': memory.init_bank(bank_rng, num_examples, config.model.projection_dim)}
    if c.objective == 'nce':
      extra['log_partition'] = jnp.zeros((), jnp.float32)
      extra['partition_set'] = jnp.zeros((), jnp.bool_)
    return params, batch_stats, extra

  def loss(params, batch_stats, extra, batch, step, rng):
    del step
    bank = extra['bank']
    (h, v, _), batch_stats = common.apply_train(model, params, batch_stats, batch.views[0])
    positive = jax.lax.stop_gradient(bank[batch.index])  # [B, D], before this step's update
    negatives = memory.sample_negatives(rng, bank, v.shape[0], c.num_negatives)  # [B, K, D]
    new_extra = {'bank': memory.bank_update(bank, batch.index, v, momentum=c.momentum)}
    metrics = {}
    if c.objective == 'nce':
      log_partition = jax.lax.cond(
          extra['partition_set'],
          lambda: extra['log_partition'],
          lambda: estimate_log_partition(v, positive, negatives, temperature=c.temperature,
                                         num_examples=num_examples))
      log_partition = jax.lax.stop_gradient(log_partition)
      value = losses.nce(v, positive, negatives, temperature=c.temperature,
                         log_partition=log_partition, num_examples=num_examples)
      new_extra['log_partition'] = log_partition
      new_extra['partition_set'] = jnp.ones((), jnp.bool_)
      metrics['log_partition'] = log_partition
    else:
      value = losses.info_nce(v, positive, negatives, temperature=c.temperature)
    vn = losses.l2_normalize(jax.lax.stop_gradient(v))
    metrics['positive_similarity'] = jnp.mean(jnp.sum(vn * positive, axis=-1))
    # mean_k v.n_k = v . mean_k n_k: one pass over the negatives, no [B, K] matrix.
    metrics['negative_similarity'] = jnp.mean(jnp.sum(vn * jnp.mean(negatives, axis=1), -1))
    return value, LossOutput(batch_stats=batch_stats, extra=new_extra, metrics=metrics,
                             features=h, embeddings=(v, positive))

  return Method(name='instdisc', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=common.encode_fn(model))
