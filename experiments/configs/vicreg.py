"""VICReg (Bardes, Ponce & LeCun 2022): variance-invariance-covariance regularisation.

Default (digits, the embedded dataset):
  python -m jssl.main --config=experiments/configs/vicreg.py --workdir=/tmp/jssl/vicreg_digits

Variants (`vicreg.py:<variant>`):
  fashion_mnist  Fashion-MNIST from its IDX files (Debian package dataset-fashion-mnist)
  cifar10        TFDS cifar10, ResNet-18 with the CIFAR stem, LARS, a 3 x 2048 expander
Any field can be overridden: --config.vicreg.cov_weight=1.0 --config.model.projection_dim=1024
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'vicreg'
  config.vicreg = ml_collections.ConfigDict({
      'sim_weight': 25.0,  # λ, invariance (paper: 25)
      'var_weight': 25.0,  # μ, variance (paper: 25)
      'cov_weight': 1.0,  # ν, covariance (paper: 1)
  })
  dataset = variant or 'digits'
  if dataset not in jssl_config.DATA_PRESETS:
    raise ValueError(f'unknown variant {variant!r} of vicreg.py; choose one of: digits, '
                     'fashion_mnist, cifar10')
  jssl_config.apply_data_preset(config, dataset)
  config.model.projection_layers = 3  # the paper's 3-layer expander (8192-8192-8192)
  if dataset in ('digits', 'fashion_mnist'):
    config.model.projection_hidden_dim = 512
    config.model.projection_dim = 512
  elif dataset == 'cifar10':
    config.model.projection_hidden_dim = 2048
    config.model.projection_dim = 2048
    config.optimizer.name = 'lars'
    config.optimizer.base_learning_rate = 0.2  # x batch/256 (the paper's base rate)
    config.optimizer.weight_decay = 1e-6
  return config
