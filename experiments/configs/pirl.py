"""PIRL (Misra & van der Maaten 2019): jigsaw-invariant representations with a memory bank.

Default (digits, the embedded dataset):
  python -m jssl.main --config=experiments/configs/pirl.py --workdir=/tmp/jssl/pirl_digits

The digits default uses the softmax over the sampled negatives instead of the paper's NCE: with
only 1,259 images NCE collapsed there for InstDisc (see jssl/methods/instdisc.py), which shares
PIRL's memory bank and loss; the other datasets use NCE.

Variants (`pirl.py:<variant>`):
  fashion_mnist  Fashion-MNIST from its IDX files (Debian package dataset-fashion-mnist), NCE
  cifar10        TFDS cifar10, ResNet-18 with the CIFAR stem, SGD, 4096 negatives, NCE
  digits_nce     digits with the paper's NCE objective (for comparison)
Any field can be overridden: --config.pirl.num_negatives=512 --config.pirl.log_partition=0.0
"""

import ml_collections
from ml_collections import config_dict

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'pirl'
  config.pirl = ml_collections.ConfigDict({
      'objective': 'nce',  # the paper's NCE, or 'softmax' over the same negatives
      # log Z of the NCE: None estimates it once from the first batch and keeps it, as the
      # authors' code does (VISSL, norm_constant=-1); 0.0 is the formula as printed,
      # h = exp(s/tau) / (exp(s/tau) + K/N).
      'log_partition': config_dict.placeholder(float),
      'temperature': 0.07,
      # K bank rows per query, sampled uniformly with replacement. Digits has only 1,259
      # training images, so 1024 draws (K/N = 0.8), not the paper's 32,000 (for ImageNet).
      'num_negatives': 1024,
      'momentum': 0.5,  # memory-bank update
      'jigsaw_weight': 0.5,  # lambda: weight of L_NCE(m_I, g(v_It)); 1 - lambda on f(v_I)
      'grid': 3,  # 3x3 jigsaw
      # Tile side / cell side (paper: 64 / 85). 16x16 digit views: 5-px cells, 4-px tiles;
      # 28x28 Fashion-MNIST: 9-px cells, 7-px tiles; 32x32 CIFAR: 10-px cells, 8-px tiles.
      'tile_fraction': 0.75,
  })
  variants = {'digits': ('digits', 'softmax'), 'fashion_mnist': ('fashion_mnist', 'nce'),
              'cifar10': ('cifar10', 'nce'), 'digits_nce': ('digits', 'nce')}
  if (variant or 'digits') not in variants:
    raise ValueError(f'unknown variant {variant!r} of pirl.py; choose one of: '
                     f'{", ".join(variants)}')
  dataset, config.pirl.objective = variants[variant or 'digits']
  jssl_config.apply_data_preset(config, dataset)
  # PIRL's heads f and g are linear, to 128-d (the bank's width).
  config.model.projection_layers = 1
  config.model.projection_dim = 128
  if dataset == 'fashion_mnist':
    config.pirl.num_negatives = 4096  # 60,000 images; the paper's 32,000 would be B x 32k x D
  elif dataset == 'cifar10':
    config.pirl.num_negatives = 4096
    config.optimizer.name = 'sgd'  # authors' VISSL config: SGD, momentum 0.9, 0.03 per 256
    config.optimizer.base_learning_rate = 0.03  # x batch/256
    config.optimizer.weight_decay = 1e-4
    config.optimizer.warmup_steps = 0
  return config
