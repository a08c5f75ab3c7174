"""Local Aggregation (Zhuang, Zhai & Yamins 2019): close vs background neighbours in a bank.

Default (digits, the embedded dataset):
  python -m jssl.main --config=experiments/configs/local_aggregation.py --workdir=/tmp/jssl/la_digits

Variants (`local_aggregation.py:<variant>`):
  fashion_mnist  Fashion-MNIST from its IDX files (Debian package dataset-fashion-mnist)
  cifar10        TFDS cifar10, ResNet-18 with the CIFAR stem, SGD as the authors' code
Any field can be overridden: --config.local_aggregation.num_clusters=100
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'local_aggregation'
  config.local_aggregation = ml_collections.ConfigDict({
      'temperature': 0.07,
      'momentum': 0.5,  # memory-bank update, as InstDisc
      # k background neighbours. The paper's 4096 are 0.3% of ImageNet; digits has 1,259
      # images (~126 per class), so its background is a fifth of the bank.
      'background_neighbours': 256,
      # Clusters of each k-means over the bank. The authors' ImageNet setting, 30,000 of 1.28 M
      # images, is ~43 images per cluster; 50 clusters give digits ~25.
      'num_clusters': 50,
      'num_kmeans': 10,  # clusterings whose union of co-members makes C_i (paper: 10)
      'kmeans_iters': 20,  # Faiss's default, as the authors
      'kmeans_init': 'random',  # Faiss's
      'instance_warmup_epochs': 10,  # InstDisc's loss first (the paper starts from 10 IR epochs)
  })
  dataset = variant or 'digits'
  if dataset not in jssl_config.DATA_PRESETS:
    raise ValueError(f'unknown variant {variant!r} of local_aggregation.py; choose one of: '
                     f'{", ".join(jssl_config.DATA_PRESETS)}')
  jssl_config.apply_data_preset(config, dataset)
  # LA's head, as InstDisc's: one linear layer to a 128-d unit embedding (the bank's width).
  config.model.projection_layers = 1
  config.model.projection_dim = 128
  if dataset == 'digits':
    # 19 steps per epoch instead of the preset's 4 (same peak learning rate, 2e-3), so that
    # the bank and the clusters are refreshed once per 19 steps, as an epoch of many steps
    # would. Measured over 30 epochs: knn_top1 0.78 at random init, 0.89 trained.
    config.batch_size = 64
    config.optimizer.base_learning_rate = 8e-3  # x 64/256
  elif dataset == 'fashion_mnist':
    config.local_aggregation.background_neighbours = 4096  # the paper's k; 55,000 images
    # ~110 images per cluster; 5 clusterings keep the per-epoch k-means affordable on a CPU.
    config.local_aggregation.num_clusters = 500
    config.local_aggregation.num_kmeans = 5
    config.local_aggregation.instance_warmup_epochs = 2  # of the preset's 20 epochs
  elif dataset == 'cifar10':
    config.local_aggregation.background_neighbours = 4096
    config.local_aggregation.num_clusters = 1000  # 45,000 images, ~45 per cluster
    config.optimizer.name = 'sgd'  # the authors: SGD, lr 0.03 at batch 128, momentum 0.9
    config.optimizer.base_learning_rate = 0.06  # x batch/256
    config.optimizer.weight_decay = 1e-4
    config.optimizer.warmup_steps = 0
  return config
