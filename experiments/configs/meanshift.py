"""Mean Shift, MSF (Koohpayegani et al. 2021): BYOL towards the k nearest neighbours of the target.

Default (digits, the embedded dataset):
  python -m jssl.main --config=experiments/configs/meanshift.py --workdir=/tmp/jssl/meanshift_digits

Variants (`meanshift.py:<variant>`):
  fashion_mnist  Fashion-MNIST from its IDX files (Debian package dataset-fashion-mnist)
  cifar10        TFDS cifar10, ResNet-18 with the CIFAR stem, MSF's SGD and heads, bank 8192
Any field can be overridden: --config.meanshift.num_neighbours=1 --config.meanshift.bank_size=512
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'meanshift'
  config.meanshift = ml_collections.ConfigDict({
      'num_neighbours': 5,  # k (paper: 5); the target itself is always one of them
      # FIFO memory bank of unit target embeddings, a multiple of the global batch. The paper's
      # 128000 is 10% of ImageNet; digits has 1259 training images, so 4 batches.
      'bank_size': 1024,
      # Target EMA, constant (paper: 0.99). 0.99 averages over ~100 steps, the length of a
      # 30-epoch digits run (4 steps an epoch), so the target would stay near its random init
      # (measured: kNN 0.769 vs 0.780 at random init after 30 epochs; 0.9 gave 0.791).
      'momentum': 0.9,
      'momentum_schedule': 'constant',
      'predictor_hidden_dim': 256,  # MSF: the projector's hidden width (2x the features)
      'weak_target_view': True,  # MSF's weak/strong: view 2 (target) is crop + flip only
  })
  dataset = variant or 'digits'
  if dataset not in jssl_config.DATA_PRESETS:
    raise ValueError(f'unknown variant {variant!r} of meanshift.py; choose one of: digits, '
                     'fashion_mnist, cifar10')
  jssl_config.apply_data_preset(config, dataset)
  if dataset != 'digits':
    config.meanshift.momentum = 0.99  # the paper's; these runs have thousands of steps
  if dataset == 'fashion_mnist':
    config.meanshift.bank_size = 4096  # 7% of the 55000 training images
    config.meanshift.predictor_hidden_dim = 512
  elif dataset == 'cifar10':
    # MSF's heads for a ResNet of F features: hidden 2F, output F/4 (ResNet-18: 1024, 128).
    config.model.projection_hidden_dim = 1024
    config.model.projection_dim = 128
    config.meanshift.predictor_hidden_dim = 1024
    config.meanshift.bank_size = 8192  # 16 batches of 512, 18% of the 45000 training images
    config.optimizer.name = 'sgd'  # MSF: SGD, momentum 0.9, wd 1e-4, lr 0.05 per 256, cosine
    config.optimizer.base_learning_rate = 0.05
    config.optimizer.weight_decay = 1e-4
    config.optimizer.warmup_steps = 0
  return config
