"""Deep InfoMax (Hjelm et al. 2019): local (and global) mutual information between an image's
feature map and its representation, with prior matching.

Default (digits, the embedded dataset, 16x16 views; local features: the 8x8 map of the small
CNN's second block):
  python -m jssl.main --config=experiments/configs/dim.py --workdir=/tmp/jssl/dim_digits

Variants (`dim.py:<variant>`):
  digits         (the default)
  fashion_mnist  Fashion-MNIST from its IDX files; local features on the 14x14 map
  cifar10        TFDS cifar10, ResNet-18 (CIFAR stem); local features on the 8x8 third stage

Any field can be overridden: --config.dim.estimator=infonce (jsd, infonce or dv: the paper's
estimator comparison), --config.dim.global_weight=1 --config.dim.local_weight=0 (DIM(G)),
--config.dim.prior_weight=0 (no prior matching, one player).

DIM(L) as in the paper: local_weight (beta) 1, global_weight (alpha) 0, prior_weight (gamma)
0.1. Optimiser: Adam (the paper's), a peak of 1e-3 here for short runs, cosine decay. Views: one
random resized crop + flip per image.
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'dim'
  config.dim = ml_collections.ConfigDict({
      'estimator': 'jsd',  # 'jsd' (DIM's choice), 'infonce' or 'dv'
      'local_weight': 1.0,  # beta
      'global_weight': 0.0,  # alpha
      'prior_weight': 0.1,  # gamma; 0 drops the prior discriminator
      'critic_dim': 128,  # output of the local and global critic networks
      'local_block': -2,  # which encoder feature map holds the local features
      'prior_hidden': (256, 64),  # the prior discriminator's hidden widths (1000, 200 in DIM)
  })
  dataset = variant or 'digits'
  if dataset not in jssl_config.DATA_PRESETS:
    raise ValueError(f'unknown variant {variant!r} of dim.py; choose one of: digits, '
                     'fashion_mnist, cifar10')
  jssl_config.apply_data_preset(config, dataset)
  config.augment.preset = 'crop_flip'
  if dataset == 'cifar10':
    config.dim.critic_dim = 512
    config.dim.prior_hidden = (1000, 200)
  return jssl_config.apply_adam(config, peak_learning_rate=1e-3, warmup_steps=50)
