"""ClusterFit: the ids are k-means of the source run's frozen features, the loss classifies
them, the source's probes are reported, NMI, and the errors of a bad source."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jssl
from jssl import data
from jssl.config import ConfigError
from jssl.methods import Batch, TrainInfo
from jssl.methods import clusterfit
from jssl.methods import kmeans
import stage_one
from tiny import cross_entropy, tiny_config

DIGITS = data.load_dataset('digits')
INFO = TrainInfo(num_examples=len(DIGITS.train), num_classes=10, image_channels=1, num_steps=10,
                 dataset=DIGITS)


@pytest.fixture(scope='module')
def source(tmp_path_factory):
  """A rotation run on digits after one step, saved as the CLI saves it, with a metrics file."""
  workdir = str(tmp_path_factory.mktemp('source'))
  stage_one.write_stage_one(tiny_config('rotation'), workdir, steps=1)
  with open(os.path.join(workdir, 'metrics.jsonl'), 'w') as f:
    f.write(json.dumps({'step': 0, 'random_init': True, 'knn_top1': 0.1}) + '\n')
    f.write(json.dumps({'step': 1, 'loss': 2.0}) + '\n')
    f.write(json.dumps({'step': 1, 'knn_top1': 0.5, 'linear_top1': 0.75}) + '\n')
  return workdir


def _config(workdir, **fields):
  return tiny_config('clusterfit', **{'source_workdir': workdir, 'num_clusters': 6, **fields})


def test_ids_are_kmeans_of_the_source_features_and_the_loss_classifies_them(source):
  config = _config(source)
  method = clusterfit.create(config, INFO)
  features = jssl.load_encoder(source)(DIGITS.train.get_batch(np.arange(len(DIGITS.train))))
  want = kmeans.kmeans(jax.random.key(0), jnp.asarray(features), num_clusters=6, num_iters=20,
                       metric='cosine').assignments
  view = jax.random.uniform(jax.random.key(0), (8, 16, 16, 1))
  params, batch_stats, extra = jax.jit(method.init)(jax.random.key(1), view)
  np.testing.assert_array_equal(extra['cluster_ids'], want)
  index = jnp.asarray([5, 0, 17, 3, 99, 42, 7, 1000])
  batch = Batch(views=(view,), label=jnp.zeros(8, jnp.int32), index=index)
  value, out = jax.jit(method.loss)(params, batch_stats, extra, batch, jnp.int32(0),
                                    jax.random.key(2))
  (_, logits, _), _ = jax.jit(lambda p: clusterfit.common.apply_train(
      clusterfit.build_model(config), p, batch_stats, view))(params)
  np.testing.assert_allclose(value, cross_entropy(logits, np.asarray(want)[index]), rtol=1e-5)
  assert logits.shape == (8, 6) and out.features.shape == (8, method.features_dim)
  results = method.evaluate(None)
  assert results['source_knn_top1'] == 0.5 and results['source_linear_top1'] == 0.75
  labels = DIGITS.train.get_batch(np.arange(len(DIGITS.train)))['label']
  np.testing.assert_allclose(results['cluster_label_nmi'],
                             clusterfit.normalized_mutual_information(np.asarray(want), labels))


def test_normalized_mutual_information():
  a = np.asarray([0, 0, 1, 1, 2, 2])
  assert clusterfit.normalized_mutual_information(a, a) == pytest.approx(1.0)
  assert clusterfit.normalized_mutual_information(a, 5 - a) == pytest.approx(1.0)  # renamed
  assert clusterfit.normalized_mutual_information(np.asarray([0, 1, 0, 1]),
                                                  np.asarray([0, 0, 1, 1])) == pytest.approx(0.0)
  assert clusterfit.normalized_mutual_information(a, np.zeros(6)) == 0.0


def test_a_bad_source_is_a_clear_error(source, tmp_path):
  with pytest.raises(ConfigError, match="source_workdir='' is not a directory; train a source"):
    clusterfit.create(_config(''), INFO)
  with pytest.raises(ConfigError, match='holds no finished jssl run'):
    clusterfit.create(_config(str(tmp_path)), INFO)
  config = _config(source)
  config.dataset.name = 'fashion_mnist'
  with pytest.raises(ConfigError, match="trained on 'digits', this run on 'fashion_mnist'"):
    clusterfit.create(config, INFO)
  with pytest.raises(ConfigError, match='num_clusters=5000 must be in \\[2, 1259\\]'):
    clusterfit.create(_config(source, num_clusters=5000), INFO)
