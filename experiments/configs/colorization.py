"""Colorful image colorization (Zhang et al. 2016): predict quantised ab colours from L, with
class rebalancing.

Default (emoji: 1,870 colour emoji rendered from Debian's Noto font, 32x32, 9 groups):
  python -m jssl.main --config=experiments/configs/colorization.py --workdir=/tmp/jssl/color

Variants (`colorization.py:<variant>`):
  emoji    (the default) small CNN on L, predictions at 16x16 (its second block's resolution)
  cifar10  TFDS cifar10, ResNet-18 (CIFAR stem) on L, predictions at 16x16 (its second stage)

Any field can be overridden: --config.colorization.rebalance_lambda=1 (no class rebalancing:
the paper's ablation), --config.colorization.bin_size=20 (coarser colours).

Views: one random resized crop + horizontal flip ('crop_flip'; colour jitter would corrupt the
targets). Optimiser: Adam, a peak of 1e-3 (the paper: Adam 3e-5 for 450k iterations).
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'colorization'
  config.colorization = ml_collections.ConfigDict({
      'bin_size': 10.0,  # side of the ab cells (the paper's grid size)
      'neighbours': 5,  # bins of each pixel's soft encoding
      'sigma': 5.0,  # Gaussian of the soft encoding and of the prior's smoothing
      'rebalance_lambda': 0.5,  # weight of the uniform in the rebalancing mixture (1: none)
      'prior_examples': 2000,  # training images whose pixels give the bins' frequency
      'target_block': 1,  # the encoder map whose resolution the colours are predicted at
      'head_hidden': 128,  # width of the hypercolumn head
      'temperature': 0.38,  # annealed mean of the evaluation's colourings
      'eval_examples': 256,  # test images coloured at every evaluation
  })
  dataset = variant or 'emoji'
  if dataset not in ('emoji', 'cifar10'):
    raise ValueError(f'unknown variant {variant!r} of colorization.py; choose one of: emoji, '
                     'cifar10 (colorization needs colour images)')
  jssl_config.apply_data_preset(config, dataset)
  config.augment.preset = 'crop_flip'
  if dataset == 'cifar10':
    config.colorization.head_hidden = 256
  return jssl_config.apply_adam(config, peak_learning_rate=1e-3, warmup_steps=50)
