"""VQ-VAE (van den Oord et al. 2017), stage one: discrete codes on a grid, straight-through
gradient, commitment loss, EMA codebook and dead-code restarts, on binarized images
(jssl/methods/vqvae.py). Stage two, the PixelCNN prior over its codes, is vqvae_prior.py.

Default (digits, 8x8, the embedded dataset; 4x4 codes from 8):
  python -m jssl.main --config=experiments/configs/vqvae.py --workdir=runs/vqvae_digits

Variants (`vqvae.py:<variant>`):
  digits           scikit-learn's 8x8 digits, 4x4 grid of 16-d codes, K = 8, EMA (default)
  digits_gradient  the same with the codebook trained by the codebook loss (no EMA)
  fashion_mnist    Fashion-MNIST 28x28, 7x7 grid of 32-d codes, K = 128, EMA
Any field can be overridden: --config.vqvae.num_codes=512 --config.vqvae.commitment=0.5
"""

import ml_collections

from jssl import config as jssl_config

VARIANTS = ('digits', 'digits_gradient', 'fashion_mnist')


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  variant = variant or 'digits'
  if variant not in VARIANTS:
    raise ValueError(f'unknown variant {variant!r} of vqvae.py; choose one of: '
                     f'{", ".join(VARIANTS)}')
  # The dataset's preset first: it sets batch and optimizer fields the lines below override.
  config = jssl_config.apply_data_preset(jssl_config.base_config(),
                                         variant.removesuffix('_gradient'))
  config.method = 'vqvae'
  config.vqvae = ml_collections.ConfigDict({
      'num_codes': 8,  # K; on digits 8 gave 0.501 two-stage bits/dim, 16 gave 0.553
      'code_dim': 16,  # D
      'width': 32,  # channels of encoder and decoder
      'downsamplings': 1,  # stride-2 layers: 8x8 -> 4x4 codes
      'num_residual': 2,
      'commitment': 0.25,  # beta (the paper's)
      'ema': True,  # codes from moving averages (the paper's appendix), else the codebook loss
      'ema_decay': 0.99,
      'ema_epsilon': 1e-5,
      'usage_decay': 0.99,  # EMA of the vectors assigned to each code per step
      'dead_threshold': 1.0,  # usage below which a code is restarted at the next epoch
      'eval_examples': 10000,  # test images the evaluation averages over
  })
  jssl_config.apply_pixel_model_defaults(config)
  config.optimizer.base_learning_rate = 2e-3 * 256 / 128  # Adam at 2e-3
  if variant == 'fashion_mnist':
    config.model.widths = None
    config.vqvae.update(num_codes=128, code_dim=32, width=64, downsamplings=2)
    config.optimizer.base_learning_rate = 1e-3 * 256 / 128
    config.num_steps = 4000
  else:
    config.dataset.image_size = 8
    config.num_steps = 2000
    config.vqvae.ema = variant != 'digits_gradient'
  return config
