"""Augmented Multiscale Deep InfoMax (Bachman et al. 2019): InfoNCE between the global and local
features of two augmented views, at several scales.

Default (digits, the embedded dataset, 16x16 views; local features: the small CNN's 4x4 and 8x8
maps):
  python -m jssl.main --config=experiments/configs/amdim.py --workdir=/tmp/jssl/amdim_digits

Variants (`amdim.py:<variant>`):
  digits         (the default)
  fashion_mnist  Fashion-MNIST from its IDX files; 7x7 and 14x14 maps
  cifar10        TFDS cifar10, ResNet-18 (CIFAR stem); its 4x4 and 8x8 stages

Any field can be overridden: --config.amdim.local_blocks=(-1,) (one local scale),
--config.amdim.score_clip=None --config.amdim.score_penalty=0 (no score regularisation),
--config.amdim.local_queries=all (every position of the local map queries, P times the cost).

Views: the data preset's two augmented views (random resized crop, flip, colour jitter: AMDIM's
augmentation). Optimiser: Adam (the paper's), a peak of 1e-3 (2e-4 in the paper) for short runs.
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'amdim'
  config.amdim = ml_collections.ConfigDict({
      'local_blocks': (-1, -2),  # the encoder maps used as local features (5x5, 7x7 in AMDIM)
      'critic_dim': 128,  # embedding size of every scale's critic network (AMDIM: 2560 on ImageNet)
      'score_clip': 20.0,  # c of the soft clip c * tanh(s / c)
      'score_penalty': 4e-2,  # lambda of the penalty lambda * mean(s^2)
      'local_queries': 'sampled',  # local->local: one random querying position per image, or 'all'
  })
  dataset = variant or 'digits'
  if dataset not in jssl_config.DATA_PRESETS:
    raise ValueError(f'unknown variant {variant!r} of amdim.py; choose one of: digits, '
                     'fashion_mnist, cifar10')
  jssl_config.apply_data_preset(config, dataset)
  if dataset == 'cifar10':
    config.amdim.critic_dim = 512
  return jssl_config.apply_adam(config, peak_learning_rate=1e-3, warmup_steps=50)
