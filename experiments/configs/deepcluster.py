"""DeepCluster (Caron et al. 2018): k-means pseudo-labels of the network's own features.

Default (digits, the embedded dataset):
  python -m jssl.main --config=experiments/configs/deepcluster.py --workdir=/tmp/jssl/deepcluster_digits

Variants (`deepcluster.py:<variant>`):
  fashion_mnist  Fashion-MNIST from its IDX files (Debian package dataset-fashion-mnist)
  cifar10        TFDS cifar10, ResNet-18 with the CIFAR stem, SGD as in the paper
Any field can be overridden: --config.deepcluster.num_clusters=200 --config.deepcluster.pca_dim=0
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'deepcluster'
  config.deepcluster = ml_collections.ConfigDict({
      # Pseudo-classes. The paper over-segments ImageNet (10,000 clusters for 1,000 classes,
      # ~128 images each); digits has 1,259 training images of 10 classes.
      'num_clusters': 100,
      # PCA-whitening before k-means (paper: 256 of AlexNet's 4096-d fc7); capped at the
      # encoder's F (128 for the digits CNN); 0 turns it off.
      'pca_dim': 32,
      'whitening_epsilon': 1e-5,  # eigenvalue floor, relative to the largest eigenvalue
      'kmeans_iters': 20,  # Faiss's default, as in the paper
      'kmeans_init': 'random',  # Faiss's: distinct random rows
      'head': 'linear',  # classifier on the clustered features; 'mlp': projector + ReLU first
      'classifier_init_std': 0.01,  # the paper's top layer: N(0, 0.01^2), bias 0
      'balance_clusters': True,  # weight examples by 1 / cluster size (uniform over clusters)
      # Epochs between clusterings (paper: 1, with ~5,000 steps per ImageNet epoch). A digits
      # epoch is 19 steps at batch 64, too few for a re-drawn classifier to learn much before
      # the next reset.
      'recluster_every': 3,
  })
  dataset = variant or 'digits'
  if dataset not in jssl_config.DATA_PRESETS:
    raise ValueError(f'unknown variant {variant!r} of deepcluster.py; choose one of: '
                     f'{", ".join(jssl_config.DATA_PRESETS)}')
  jssl_config.apply_data_preset(config, dataset)
  if dataset == 'digits':
    # More, smaller steps than the preset (same peak learning rate, 2e-3): the classifier is
    # re-drawn at every clustering and needs steps to learn the new pseudo-labels. Measured
    # over 30 epochs: knn_top1 0.72 at random init; 0.73 at the preset's batch 256
    # (4 steps per epoch, reclustering every 5), 0.90 at batch 64 (reclustering every 3).
    config.batch_size = 64
    config.optimizer.base_learning_rate = 8e-3  # x 64/256
  elif dataset == 'fashion_mnist':
    # 55,000 training images (~110 per cluster, as the paper's ImageNet); 512-d features.
    config.deepcluster.num_clusters = 500
    config.deepcluster.pca_dim = 128
    config.deepcluster.recluster_every = 1  # 214 steps per epoch
  elif dataset == 'cifar10':
    config.deepcluster.num_clusters = 500
    config.deepcluster.pca_dim = 256  # ResNet-18: 512-d features
    config.deepcluster.recluster_every = 1
    config.optimizer.name = 'sgd'  # the paper: SGD, lr 0.05, momentum 0.9, wd 1e-5
    config.optimizer.base_learning_rate = 0.05  # x batch/256
    config.optimizer.weight_decay = 1e-5
    config.optimizer.warmup_steps = 0
  return config
