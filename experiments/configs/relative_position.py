"""Relative patch position (Doersch et al. 2015): classify where a patch lies among the 8
neighbours of the centre patch.

Default (digits, the embedded dataset, views upsampled to 24x24 so that tiles are 6x6):
  python -m jssl.main --config=experiments/configs/relative_position.py --workdir=/tmp/jssl/relpos

Variants (`relative_position.py:<variant>`):
  digits         (the default)
  fashion_mnist  Fashion-MNIST from its IDX files (28x28: 9-pixel cells, 7-pixel tiles)
  cifar10        TFDS cifar10, ResNet-18 with the CIFAR stem

Any field can be overridden: --config.relative_position.tile_fraction=0.6 (the tile's side over
its cell's; the rest is the random gap and jitter; the paper: 96-pixel patches, 48-pixel gaps,
up to 7 pixels of jitter).

Views: one random resized crop + horizontal flip per example ('crop_flip').
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'relative_position'
  config.relative_position = ml_collections.ConfigDict({
      'tile_fraction': 0.75,
  })
  dataset = variant or 'digits'
  if dataset not in jssl_config.DATA_PRESETS:
    raise ValueError(f'unknown variant {variant!r} of relative_position.py; choose one of: '
                     'digits, fashion_mnist, cifar10')
  jssl_config.apply_data_preset(config, dataset)
  config.augment.preset = 'crop_flip'
  if dataset == 'digits':
    config.dataset.image_size = 24
  elif dataset == 'cifar10':
    config.model.projection_hidden_dim = 1024
  return config
