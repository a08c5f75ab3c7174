"""ClusterFit (Yan et al. 2020): cluster a trained network's features, then train a fresh network
to predict the clusters.

Stage one is any trained jssl run on the same dataset, named by
`config.clusterfit.source_workdir` (its newest checkpoint, through `jssl.load_encoder`). Its
frozen representation of every training example (the evaluation view, as its probes saw it) is
clustered by the existing k-means (`jssl.methods.kmeans`: `num_clusters` clusters,
`kmeans_iterations` Lloyd iterations, `metric` 'cosine' on L2-normalised features or
'euclidean', seed `kmeans_seed`). A new encoder (`config.model`, randomly initialised) with a
classifier head (`projection_layers` Dense layers, hidden width `projection_hidden_dim`,
`num_clusters` outputs) is then trained with the cross-entropy of each augmented view's cluster
id, read by `Batch.index`. The ids are part of the method's state (checkpointed), so a resumed
run trains on exactly the ids it started with.

Every evaluation also reports the source run's own final probes (`source_knn_top1`,
`source_linear_top1`, read from its metrics.jsonl: the comparison the paper makes) and the
normalised mutual information between the cluster ids and the training labels
(`cluster_label_nmi`; labels are read only for this diagnostic).
"""

from __future__ import annotations

import json
import logging
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jssl import encoder as encoder_lib
from jssl import models
from jssl.config import ConfigError
from jssl.methods import common
from jssl.methods import kmeans
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo
from jssl.train import workdir as workdir_record

log = logging.getLogger(__name__)


def normalized_mutual_information(a: np.ndarray, b: np.ndarray) -> float:
  """NMI of two labelings, I(a; b) / sqrt(H(a) H(b)) (0 when either is constant)."""
  _, a = np.unique(a, return_inverse=True)
  _, b = np.unique(b, return_inverse=True)
  joint = np.zeros((a.max() + 1, b.max() + 1))
  np.add.at(joint, (a, b), 1.0)
  joint /= joint.sum()
  pa, pb = joint.sum(1), joint.sum(0)
  nonzero = joint > 0
  mutual = np.sum(joint[nonzero] * np.log(joint[nonzero] / np.outer(pa, pb)[nonzero]))
  entropy = lambda p: -np.sum(p[p > 0] * np.log(p[p > 0]))
  denominator = np.sqrt(entropy(pa) * entropy(pb))
  return float(mutual / denominator) if denominator > 0 else 0.0


def source_results(workdir: str) -> dict[str, float]:
  """The last evaluation in `workdir`'s metrics.jsonl with knn/linear results, prefixed
  'source_' ({} when there is none)."""
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return {}
  last = {}
  with open(path) as handle:
    for line in handle:
      record = json.loads(line)
      if 'knn_top1' in record and not record.get('random_init'):
        last = record
  return {f'source_{k}': float(last[k]) for k in ('knn_top1', 'linear_top1') if k in last}


def cluster_source(config: ml_collections.ConfigDict, info: TrainInfo):
  """(cluster ids int32 [N] of the training split, the source's step).

  Raises:
    ConfigError: no such workdir or no finished run in it, another dataset, or more clusters
      than training examples.
  """
  c = config.clusterfit
  path = c.source_workdir
  fix = ('train a source run first (e.g. python -m jssl.main '
         '--config=experiments/configs/rotation.py --workdir=DIR) and set '
         '--config.clusterfit.source_workdir=DIR')
  if not path or not os.path.isdir(path):
    raise ConfigError(f'config.clusterfit.source_workdir={path!r} is not a directory; {fix}.')
  record = workdir_record.read_record(path)
  if record is None:
    raise ConfigError(f'{path} holds no finished jssl run (no {workdir_record.RECORD_NAME}); '
                      f'{fix}.')
  source = encoder_lib.config_from_record(record['config'])
  if source.dataset.name != config.dataset.name:
    raise ConfigError(f'the source run in {path} trained on {source.dataset.name!r}, this run '
                      f'on {config.dataset.name!r}: the clusters must be of the same training '
                      'examples.')
  if info.dataset is None:
    raise ConfigError('clusterfit clusters the training split: it needs the dataset.')
  train = info.dataset.train
  if not 2 <= c.num_clusters <= len(train):
    raise ConfigError(f'config.clusterfit.num_clusters={c.num_clusters} must be in [2, '
                      f'{len(train)}] (the training examples).')
  try:
    trained = encoder_lib.load_encoder(path)
  except FileNotFoundError as error:
    raise ConfigError(f'{error} {fix}.') from None
  features = trained(train.get_batch(np.arange(len(train))))
  result = kmeans.kmeans(jax.random.key(c.kmeans_seed), jnp.asarray(features),
                         num_clusters=c.num_clusters, num_iters=c.kmeans_iterations,
                         metric=c.metric)
  ids = np.asarray(result.assignments, np.int32)
  log.info('clusterfit: %d clusters of %s (step %d) features, %d non-empty', c.num_clusters,
           path, trained.step, len(np.unique(ids)))
  return ids, trained.step


def build_model(config: ml_collections.ConfigDict) -> common.EncoderProjector:
  """A fresh encoder and the cluster classifier of `config`."""
  return common.encoder_classifier(config, config.clusterfit.num_clusters)


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds ClusterFit: clusters the source run's features, then the classifier of them."""
  c = config.clusterfit
  common.require_positive_ints(config, 'clusterfit', ('num_clusters', 'kmeans_iterations'))
  if c.metric not in kmeans.METRICS:
    raise ConfigError(f'config.clusterfit.metric={c.metric!r} is unknown; choose one of '
                      f'{list(kmeans.METRICS)}.')
  ids, _ = cluster_source(config, info)
  nmi = normalized_mutual_information(ids, info.dataset.train.get_batch(
      np.arange(len(ids)))['label'])
  views = common.views_for(config, 1, 'ClusterFit')
  model = build_model(config)

  def init(rng, images):
    params, batch_stats = common.init_variables(model, rng, images)
    return params, batch_stats, {'cluster_ids': jnp.asarray(ids)}

  def loss(params, batch_stats, extra, batch, step, rng):
    del step, rng
    (view,) = batch.views
    (h, logits, _), batch_stats = common.apply_train(model, params, batch_stats, view)
    labels = extra['cluster_ids'][batch.index]
    value, accuracy = common.classification_loss(logits, labels)
    return value, LossOutput(batch_stats=batch_stats, extra=extra,
                             metrics={'cluster_accuracy': accuracy}, features=h)

  def evaluate(context):
    del context
    return {**source_results(c.source_workdir), 'cluster_label_nmi': nmi}

  return Method(name='clusterfit', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=common.encode_fn(model), evaluate=evaluate)
