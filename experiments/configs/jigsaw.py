"""Jigsaw puzzles (Noroozi & Favaro 2016): classify which permutation shuffled 3x3 tiles.

Default (digits, the embedded dataset, views upsampled to 24x24 so that tiles are 7x7):
  python -m jssl.main --config=experiments/configs/jigsaw.py --workdir=/tmp/jssl/jigsaw_digits

Variants (`jigsaw.py:<variant>`):
  fashion_mnist  Fashion-MNIST from its IDX files (Debian package dataset-fashion-mnist)
  cifar10        TFDS cifar10, ResNet-18 with the CIFAR stem

Any field can be overridden: --config.jigsaw.num_permutations=1000 (the permutation set's size),
--config.jigsaw.tile_fraction=0.85 (the tile's side over its cell's; the rest is the random gap).

Views: one random resized crop + horizontal flip per example ('crop_flip'); the puzzle (tile
offsets and the permutation) is drawn on the device for every example at every step.
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'jigsaw'
  config.jigsaw = ml_collections.ConfigDict({
      'grid': 3,
      'num_permutations': 100,  # the paper's ablation spans 100 to 1000 for 3x3
      'tile_fraction': 0.85,  # 64-pixel tiles in 75-pixel cells in the paper
      'permutation_seed': 0,
  })
  dataset = variant or 'digits'
  if dataset not in jssl_config.DATA_PRESETS:
    raise ValueError(f'unknown variant {variant!r} of jigsaw.py; choose one of: digits, '
                     'fashion_mnist, cifar10')
  jssl_config.apply_data_preset(config, dataset)
  config.augment.preset = 'crop_flip'
  if dataset == 'digits':
    config.dataset.image_size = 24
  elif dataset == 'cifar10':
    config.model.projection_hidden_dim = 1024
  return config
