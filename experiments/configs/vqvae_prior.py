"""VQ-VAE stage two (van den Oord et al. 2017): a Gated PixelCNN prior over the codes of a
trained VQ-VAE, whose workdir it reads; reports the two-stage model's bits/dim and samples
(jssl/methods/vqvae_prior.py).

Stage one first, then the prior (digits, the embedded dataset):
  python -m jssl.main --config=experiments/configs/vqvae.py --workdir=runs/vqvae_digits
  python -m jssl.main --config=experiments/configs/vqvae_prior.py --workdir=runs/vqvae_prior_digits

Variants (`vqvae_prior.py:<variant>`), each reading the stage-one workdir of the same name:
  digits         over runs/vqvae_digits (vqvae.py), 6 gated layers of 64 channels (default)
  fashion_mnist  over runs/vqvae_fmnist (vqvae.py:fashion_mnist), 8 gated layers of 64 channels
Another stage one: --config.vqvae_prior.stage_one_workdir=runs/my_vqvae
"""

import ml_collections

from jssl import config as jssl_config

VARIANTS = ('digits', 'fashion_mnist')


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  variant = variant or 'digits'
  if variant not in VARIANTS:
    raise ValueError(f'unknown variant {variant!r} of vqvae_prior.py; choose one of: '
                     f'{", ".join(VARIANTS)}')
  # The dataset's preset first: it sets batch and optimizer fields the lines below override.
  config = jssl_config.apply_data_preset(jssl_config.base_config(), variant)
  config.method = 'vqvae_prior'
  config.vqvae_prior = ml_collections.ConfigDict({
      'stage_one_workdir': 'runs/vqvae_digits',
      'features': 64,  # channels of both stacks
      'num_layers': 6,  # gated layers; the first is type A
      'kernel_size': 3,
      'first_kernel_size': 3,  # the code grid is 4x4 (digits) or 7x7 (Fashion-MNIST)
      'eval_examples': 10000,
      'num_samples': 64,
  })
  jssl_config.apply_pixel_model_defaults(config)
  config.optimizer.base_learning_rate = 1e-3 * 256 / 128  # Adam at 1e-3
  if variant == 'fashion_mnist':
    config.model.widths = None
    config.vqvae_prior.update(stage_one_workdir='runs/vqvae_fmnist', num_layers=8,
                              first_kernel_size=5)
    config.num_steps = 3000
  else:
    config.dataset.image_size = 8
    config.num_steps = 2000
  return config
