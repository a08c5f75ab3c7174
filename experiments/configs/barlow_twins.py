"""Barlow Twins (Zbontar et al. 2021): the two views' cross-correlation driven to the identity.

Default (digits, the embedded dataset):
  python -m jssl.main --config=experiments/configs/barlow_twins.py --workdir=/tmp/jssl/bt_digits

Variants (`barlow_twins.py:<variant>`):
  fashion_mnist  Fashion-MNIST from its IDX files (Debian package dataset-fashion-mnist)
  cifar10        TFDS cifar10, ResNet-18 with the CIFAR stem, LARS, a 3 x 2048 projector
Any field can be overridden: --config.barlow_twins.lambd=5e-3 --config.model.projection_dim=256
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'barlow_twins'
  # λ: the paper's 5e-3 goes with D = 8192 output dimensions; the balance of the D diagonal
  # against the D(D - 1) off-diagonal terms depends on D, and for small D about 1/D is used.
  config.barlow_twins = ml_collections.ConfigDict({'lambd': 1.0 / 128})
  dataset = variant or 'digits'
  if dataset not in jssl_config.DATA_PRESETS:
    raise ValueError(f'unknown variant {variant!r} of barlow_twins.py; choose one of: digits, '
                     'fashion_mnist, cifar10')
  jssl_config.apply_data_preset(config, dataset)
  config.model.projection_layers = 3  # the paper's 3-layer projector (8192-8192-8192)
  if dataset == 'digits':
    config.model.projection_hidden_dim = 512
    config.model.projection_dim = 128
  elif dataset == 'fashion_mnist':
    config.model.projection_hidden_dim = 512
    config.model.projection_dim = 512
    config.barlow_twins.lambd = 1.0 / 512
  elif dataset == 'cifar10':
    config.model.projection_hidden_dim = 2048
    config.model.projection_dim = 2048
    config.barlow_twins.lambd = 5e-3  # the paper's value (tuned at D = 8192)
    config.optimizer.name = 'lars'
    config.optimizer.base_learning_rate = 0.2  # x batch/256, the paper's rate for weights
    config.optimizer.weight_decay = 1.5e-6
  return config
