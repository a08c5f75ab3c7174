"""ClusterFit (Yan et al. 2020): k-means of a trained run's features, then a fresh network
trained to predict the clusters.

Two stages on digits, the embedded dataset (any method can be the source):
  python -m jssl.main --config=experiments/configs/rotation.py --workdir=/tmp/jssl/rotation_digits
  python -m jssl.main --config=experiments/configs/clusterfit.py --workdir=/tmp/jssl/clusterfit \
    --config.clusterfit.source_workdir=/tmp/jssl/rotation_digits

Variants (`clusterfit.py:<variant>`):
  digits         (the default) 100 clusters
  fashion_mnist  Fashion-MNIST from its IDX files, 500 clusters
  cifar10        TFDS cifar10, ResNet-18 (CIFAR stem), 1,000 clusters

The source must have trained on the same dataset. The paper clusters ImageNet into 16,000;
`num_clusters` scales it to these datasets (--config.clusterfit.num_clusters=K: the paper's
main ablation).

Views: the data preset's augmented views (the paper trains the new network with standard
augmentation); the rest of the training recipe is the data preset's.
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'clusterfit'
  config.clusterfit = ml_collections.ConfigDict({
      'source_workdir': '',  # the trained run whose features are clustered (required)
      'num_clusters': 100,
      'kmeans_iterations': 20,
      'metric': 'cosine',  # k-means on L2-normalised features ('euclidean': raw)
      'kmeans_seed': 0,
  })
  dataset = variant or 'digits'
  if dataset not in jssl_config.DATA_PRESETS:
    raise ValueError(f'unknown variant {variant!r} of clusterfit.py; choose one of: digits, '
                     'fashion_mnist, cifar10')
  jssl_config.apply_data_preset(config, dataset)
  config.model.projection_layers = 1  # a linear classifier of the clusters, as the paper's fc
  config.clusterfit.num_clusters = {'digits': 100, 'fashion_mnist': 500, 'cifar10': 1000}[dataset]
  return config
