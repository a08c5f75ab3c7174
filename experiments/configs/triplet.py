"""Triplet / margin contrastive loss with in-batch negative mining, trained without labels.

Default (digits, the embedded dataset; triplet loss, semi-hard negatives):
  python -m jssl.main --config=experiments/configs/triplet.py --workdir=/tmp/jssl/triplet_digits

Variants (`triplet.py:<variant>`):
  fashion_mnist  Fashion-MNIST from its IDX files (Debian package dataset-fashion-mnist)
  cifar10        TFDS cifar10, ResNet-18 with the CIFAR stem, LARS
  digits_margin  margin contrastive loss (Hadsell et al. 2006) on digits, margin 1.0
Any field can be overridden: --config.triplet.mining=hard --config.triplet.margin=0.3
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'triplet'
  config.triplet = ml_collections.ConfigDict({
      'loss': 'triplet',  # or 'margin_contrastive'
      'mining': 'semi_hard',  # 'hard', 'semi_hard' (FaceNet) or 'random'
      'margin': 0.5,  # on unit vectors: distances lie in [0, 2]
  })
  variant = variant or 'digits'
  datasets = {'digits': 'digits', 'fashion_mnist': 'fashion_mnist', 'cifar10': 'cifar10',
              'digits_margin': 'digits'}
  if variant not in datasets:
    raise ValueError(f'unknown variant {variant!r} of triplet.py; choose one of: '
                     f'{", ".join(datasets)}')
  dataset = datasets[variant]
  jssl_config.apply_data_preset(config, dataset)
  if variant == 'digits_margin':
    config.triplet.loss = 'margin_contrastive'
    config.triplet.margin = 1.0  # negatives pushed to distance 1 (cosine 0.5) or more
  return config
