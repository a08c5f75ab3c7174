"""CMC (Tian, Krishnan & Isola 2019): Contrastive Multiview Coding with memory banks.

Grayscale data (digits, Fashion-MNIST) is split into a low-pass and a high-pass view; colour
data (CIFAR-10) into L and ab of CIE Lab. One encoder per view; features are concatenated.

Default (digits, the embedded dataset):
  python -m jssl.main --config=experiments/configs/cmc.py --workdir=/tmp/jssl/cmc_digits

Variants (`cmc.py:<variant>`):
  fashion_mnist  Fashion-MNIST from its IDX files (Debian package dataset-fashion-mnist)
  cifar10        TFDS cifar10, ResNet-18 with the CIFAR stem, L vs ab, 4096 negatives
Any field can be overridden: --config.cmc.objective=nce --config.cmc.num_negatives=2048
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'cmc'
  config.cmc = ml_collections.ConfigDict({
      'objective': 'softmax',  # or 'nce' (NCE with log Z estimated on the first batch)
      'temperature': 0.07,  # CMC's ImageNet value
      'num_negatives': 1024,  # K bank rows per anchor (CMC: 16384 on 1.28M images)
      'bank_momentum': 0.5,  # CMC's memory update momentum
      'lowpass_sigma': 1.5,  # grayscale only: blur sigma in pixels of the views
  })
  dataset = variant or 'digits'
  if dataset not in jssl_config.DATA_PRESETS:
    raise ValueError(f'unknown variant {variant!r} of cmc.py; choose one of: digits, '
                     'fashion_mnist, cifar10')
  jssl_config.apply_data_preset(config, dataset)
  config.augment.preset = 'crop_flip'  # no colour distortion: the views are colour channels
  if dataset == 'fashion_mnist':
    config.cmc.num_negatives = 4096
    config.cmc.lowpass_sigma = 2.0  # 28x28 views
  elif dataset == 'cifar10':
    config.cmc.num_negatives = 4096  # CMC's default K; [B, K, D] gathers bound it here
    config.model.projection_dim = 128  # CMC's 128-d embedding
  return config
