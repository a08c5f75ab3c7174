"""NNCLR (Dwibedi et al. 2021): nearest neighbours from a support set as positives.

Default (digits, the embedded dataset):
  python -m jssl.main --config=experiments/configs/nnclr.py --workdir=/tmp/jssl/nnclr_digits

Variants (`nnclr.py:<variant>`):
  fashion_mnist  Fashion-MNIST from its IDX files (Debian package dataset-fashion-mnist)
  cifar10        TFDS cifar10, ResNet-18 with the CIFAR stem, 3-layer projector, support 8192
Any field can be overridden: --config.nnclr.support_size=512 --config.nnclr.temperature=0.2
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'nnclr'
  config.nnclr = ml_collections.ConfigDict({
      'temperature': 0.1,  # paper
      # Support set (FIFO queue) of view-1 projections, a multiple of the global batch. The
      # paper's 98304 is 7.7% of ImageNet; digits has 1259 training images, so 4 batches.
      'support_size': 1024,
      'predictor_hidden_dim': 256,  # paper: 4096, twice the projector's hidden width
  })
  dataset = variant or 'digits'
  if dataset not in jssl_config.DATA_PRESETS:
    raise ValueError(f'unknown variant {variant!r} of nnclr.py; choose one of: digits, '
                     'fashion_mnist, cifar10')
  jssl_config.apply_data_preset(config, dataset)
  if dataset == 'fashion_mnist':
    config.nnclr.support_size = 4096  # 7% of the 55000 training images
    config.nnclr.predictor_hidden_dim = 1024
  elif dataset == 'cifar10':
    # The paper's heads: a 3-layer projector 2048-2048-256 and a 4096-wide predictor.
    config.model.projection_layers = 3
    config.model.projection_hidden_dim = 2048
    config.model.projection_dim = 256
    config.nnclr.predictor_hidden_dim = 4096
    config.nnclr.support_size = 8192  # 16 batches of 512, 18% of the 45000 training images
  return config
