"""BYOL (Grill et al. 2020): online network + predictor regress an EMA target network.

Default (digits, the embedded dataset):
  python -m jssl.main --config=experiments/configs/byol.py --workdir=/tmp/jssl/byol_digits

Variants (`byol.py:<variant>`):
  fashion_mnist  Fashion-MNIST from its IDX files (Debian package dataset-fashion-mnist)
  cifar10        TFDS cifar10, ResNet-18 with the CIFAR stem, LARS, BYOL's 4096-256 heads
Any field can be overridden: --config.byol.momentum=0.996
Collapse ablation (no predictor): --config.byol.predictor_hidden_dim=0
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'byol'
  config.byol = ml_collections.ConfigDict({
      # Base τ of the cosine increase to 1. Paper: 0.996 over ~300k steps. Digits runs have a
      # few hundred steps, and 0.996 (an averaging horizon of ~250 steps) would leave the
      # target far behind the online network for most of the run; 0.99 (~100 steps) lets it
      # follow.
      'momentum': 0.99,
      'momentum_schedule': 'cosine',
      'predictor_hidden_dim': 256,  # 0 = no predictor (the collapse ablation); paper: 4096
  })
  dataset = variant or 'digits'
  if dataset not in jssl_config.DATA_PRESETS:
    raise ValueError(f'unknown variant {variant!r} of byol.py; choose one of: digits, '
                     'fashion_mnist, cifar10')
  jssl_config.apply_data_preset(config, dataset)
  if dataset == 'fashion_mnist':
    config.byol.momentum = 0.996  # ~4700 steps: the paper's value
    config.byol.predictor_hidden_dim = 512
  elif dataset == 'cifar10':
    config.model.projection_layers = 2  # BYOL's projector and predictor: 4096 hidden, 256 out
    config.model.projection_hidden_dim = 4096
    config.model.projection_dim = 256
    config.byol.predictor_hidden_dim = 4096
    config.byol.momentum = 0.996
    config.optimizer.name = 'lars'
    config.optimizer.base_learning_rate = 0.2  # x batch/256 (BYOL, ImageNet)
    config.optimizer.weight_decay = 1.5e-6
  return config
