"""MoCo v2 (Chen, Fan, Girshick & He 2020) and v1 (He et al. 2019): momentum contrast.

Default (digits, the embedded dataset):
  python -m jssl.main --config=experiments/configs/moco.py --workdir=/tmp/jssl/moco_digits

Variants (`moco.py:<variant>`):
  fashion_mnist  Fashion-MNIST from its IDX files (Debian package dataset-fashion-mnist)
  cifar10        TFDS cifar10, ResNet-18 with the CIFAR stem, queue 4096
  digits_v1      MoCo v1 on digits: linear projection head, temperature 0.07
  cifar10_v1     MoCo v1 on cifar10: linear head, temperature 0.07
Any field can be overridden: --config.moco.queue_size=2048 --config.moco.momentum=0.999
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'moco'
  config.moco = ml_collections.ConfigDict({
      'temperature': 0.2,  # v2; v1 used 0.07
      'queue_size': 1024,  # K keys, a multiple of the global batch
      'momentum': 0.99,  # key encoder EMA; the papers' 0.999 suits their 100s of k steps
      'momentum_schedule': 'constant',
      # 'dense' builds the N x K logits against the queue; 'blockwise' computes the same loss
      # in tiles of loss_block_size^2 (memory linear in N + K), for very large batches/queues.
      'loss_impl': 'dense',
      'loss_block_size': 1024,
  })
  dataset, _, version = (variant or 'digits').partition('_v')
  if dataset not in jssl_config.DATA_PRESETS or version not in ('', '1'):
    raise ValueError(f'unknown variant {variant!r} of moco.py; choose one of: digits, '
                     'fashion_mnist, cifar10, digits_v1, cifar10_v1')
  jssl_config.apply_data_preset(config, dataset)
  if dataset == 'fashion_mnist':
    config.moco.queue_size = 4096
  elif dataset == 'cifar10':
    config.moco.queue_size = 4096
    config.optimizer.name = 'sgd'  # MoCo's optimizer: SGD, momentum 0.9, wd 5e-4
    config.optimizer.base_learning_rate = 0.06  # x batch/256
    config.optimizer.weight_decay = 5e-4
    config.optimizer.warmup_steps = 0
  if version == '1':
    config.model.projection_layers = 1  # v1: a linear projection to 128-d
    config.moco.temperature = 0.07
  return config
