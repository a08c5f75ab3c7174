"""InstDisc / NPID (Wu, Xiong, Yu & Lin 2018): instance discrimination with a memory bank.

Default (digits, the embedded dataset):
  python -m jssl.main --config=experiments/configs/instdisc.py --workdir=/tmp/jssl/instdisc_digits

The digits default uses the non-parametric softmax over the sampled negatives: with only 1,259
images the paper's NCE collapsed there (see jssl/methods/instdisc.py); the other datasets use NCE.

Variants (`instdisc.py:<variant>`):
  fashion_mnist  Fashion-MNIST from its IDX files (Debian package dataset-fashion-mnist), NCE
  cifar10        TFDS cifar10, ResNet-18 with the CIFAR stem, SGD, 4096 negatives, NCE
  digits_nce     digits with the paper's NCE objective (for comparison; it collapses there)
Any field can be overridden: --config.instdisc.num_negatives=512 --config.instdisc.objective=nce
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'instdisc'
  config.instdisc = ml_collections.ConfigDict({
      'objective': 'nce',  # the paper's NCE with a fixed partition estimate, or 'softmax'
      'temperature': 0.07,
      # K bank rows per query, sampled uniformly with replacement. Digits has only 1,259
      # training images, so 1024 draws (K/N = 0.8), not the paper's 4096 (for ImageNet).
      'num_negatives': 1024,
      'momentum': 0.5,  # memory-bank update
  })
  # Digits: softmax. After one epoch (5 steps) the small bank holds the first, highly
  # correlated embeddings, and NCE's repulsion (one term per negative, not normalised)
  # swamped the per-image signal: knn_top1 fell from 0.78 at random init to 0.45 in 30 epochs,
  # while the softmax reached 0.89.
  variants = {'digits': ('digits', 'softmax'), 'fashion_mnist': ('fashion_mnist', 'nce'),
              'cifar10': ('cifar10', 'nce'), 'digits_nce': ('digits', 'nce')}
  if (variant or 'digits') not in variants:
    raise ValueError(f'unknown variant {variant!r} of instdisc.py; choose one of: '
                     f'{", ".join(variants)}')
  dataset, config.instdisc.objective = variants[variant or 'digits']
  jssl_config.apply_data_preset(config, dataset)
  # NPID's head: one linear layer to a 128-d unit embedding (also the bank's width).
  config.model.projection_layers = 1
  config.model.projection_dim = 128
  if dataset == 'fashion_mnist':
    config.instdisc.num_negatives = 4096  # the paper's K; 60,000 images
  elif dataset == 'cifar10':
    config.instdisc.num_negatives = 4096
    config.optimizer.name = 'sgd'  # NPID: SGD, momentum 0.9, lr 0.03 at batch 256, wd 5e-4
    config.optimizer.base_learning_rate = 0.03  # x batch/256
    config.optimizer.weight_decay = 5e-4
    config.optimizer.warmup_steps = 0
  return config
