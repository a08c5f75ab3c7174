"""SupCon (Khosla et al. 2020): supervised contrastive learning (reads the class labels).

Default (digits, the embedded dataset):
  python -m jssl.main --config=experiments/configs/supcon.py --workdir=/tmp/jssl/supcon_digits

Variants (`supcon.py:<variant>`):
  fashion_mnist  Fashion-MNIST from its IDX files (Debian package dataset-fashion-mnist)
  cifar10        TFDS cifar10, ResNet-18 with the CIFAR stem, LARS
Any field can be overridden: --config.supcon.temperature=0.07 --config.supcon.use_labels=False
(use_labels=False makes each example its own class: SimCLR's NT-Xent).
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'supcon'
  config.supcon = ml_collections.ConfigDict({
      'temperature': 0.1,  # the paper's value
      'use_labels': True,  # False: positives are only the other view (SimCLR)
  })
  dataset = variant or 'digits'
  if dataset not in jssl_config.DATA_PRESETS:
    raise ValueError(f'unknown variant {variant!r} of supcon.py; choose one of: digits, '
                     'fashion_mnist, cifar10')
  jssl_config.apply_data_preset(config, dataset)
  if dataset == 'cifar10':
    config.model.projection_dim = 128  # the paper's 128-d normalised projection
  return config
