"""RotNet (Gidaris et al. 2018): predict the rotation (0/90/180/270 degrees) of each image.

Default (digits, the embedded dataset):
  python -m jssl.main --config=experiments/configs/rotation.py --workdir=/tmp/jssl/rotation_digits

Variants (`rotation.py:<variant>`):
  fashion_mnist  Fashion-MNIST from its IDX files (Debian package dataset-fashion-mnist)
  cifar10        TFDS cifar10, ResNet-18 (CIFAR stem), SGD as the paper's CIFAR-10 runs

The cifar10 variant uses the paper's CIFAR-10 optimizer: SGD, momentum 0.9, weight decay 5e-4,
batch 128, 100 epochs (cosine decay here, steps in the paper).
Any field can be overridden: --config.rotation.num_rotations=8 (2, 4 or 8; the paper's
ablation), --config.model.projection_layers=1 (a linear rotation classifier).

Views: one random resized crop + horizontal flip per example ('crop_flip', no colour
change; the paper used crops and flips), then all of its rotations in the same step.
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'rotation'
  config.rotation = ml_collections.ConfigDict({
      'num_rotations': 4,  # 2: 0/180; 4: multiples of 90 (the paper's); 8: multiples of 45
  })
  dataset = variant or 'digits'
  if dataset not in jssl_config.DATA_PRESETS:
    raise ValueError(f'unknown variant {variant!r} of rotation.py; choose one of: digits, '
                     'fashion_mnist, cifar10')
  jssl_config.apply_data_preset(config, dataset)
  config.augment.preset = 'crop_flip'
  # The rotation classifier: Dense -> BN -> ReLU -> Dense(K) on the pooled features.
  config.model.projection_layers = 2
  if dataset == 'cifar10':
    config.model.projection_hidden_dim = 512
    config.batch_size = 128
    config.num_epochs = 100
    config.optimizer.name = 'sgd'
    config.optimizer.base_learning_rate = 0.2  # x batch/256: the paper's 0.1 at batch 128
    config.optimizer.weight_decay = 5e-4
    config.optimizer.momentum = 0.9
    config.optimizer.warmup_steps = 0
  return config
