"""MoCo v3 (Chen, Xie & He 2021): momentum encoder, predictor, symmetric in-batch contrast.

Default (digits, the embedded dataset):
  python -m jssl.main --config=experiments/configs/moco_v3.py --workdir=/tmp/jssl/moco_v3_digits

Variants (`moco_v3.py:<variant>`):
  fashion_mnist  Fashion-MNIST from its IDX files (Debian package dataset-fashion-mnist)
  cifar10        TFDS cifar10, ResNet-18 with the CIFAR stem, LARS, 3-layer projector
Any field can be overridden: --config.moco_v3.temperature=0.5 --config.moco_v3.momentum=0.996
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'moco_v3'
  config.moco_v3 = ml_collections.ConfigDict({
      'temperature': 0.2,
      'momentum': 0.99,  # base of the cosine increase to 1 (paper: 0.99)
      'momentum_schedule': 'cosine',
      'predictor_hidden_dim': 256,
  })
  dataset = variant or 'digits'
  if dataset not in jssl_config.DATA_PRESETS:
    raise ValueError(f'unknown variant {variant!r} of moco_v3.py; choose one of: digits, '
                     'fashion_mnist, cifar10')
  jssl_config.apply_data_preset(config, dataset)
  if dataset == 'fashion_mnist':
    config.moco_v3.predictor_hidden_dim = 512
  elif dataset == 'cifar10':
    config.model.projection_layers = 3  # MoCo v3's 3-layer projector, 2-layer predictor
    config.model.projection_hidden_dim = 2048
    config.model.projection_dim = 256
    config.moco_v3.predictor_hidden_dim = 2048
    config.moco_v3.temperature = 0.5
  return config
