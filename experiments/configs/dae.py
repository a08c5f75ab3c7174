"""Denoising autoencoder (Vincent et al. 2008): the autoencoder of ae.py reconstructing the
clean image from a corrupted one, corrupted anew on the device at every step
(jssl/methods/autoencoder.py).

Default (digits, masking noise: 25 % of the pixels set to 0):
  python -m jssl.main --config=experiments/configs/dae.py --workdir=runs/dae_digits

Variants (`dae.py:<variant>`):
  digits                  masking noise 0.25 on digits (default)
  fashion_mnist           masking noise 0.25 on Fashion-MNIST
  digits_gaussian         additive Gaussian noise, standard deviation 0.3, on digits
  fashion_mnist_gaussian  the same on Fashion-MNIST
Any field can be overridden: --config.dae.noise_level=0.5 (the noise-level ablation:
experiments/ablations/dae_noise.sh).
"""

import ml_collections

from jssl.methods import autoencoder

VARIANTS = ('digits', 'fashion_mnist', 'digits_gaussian', 'fashion_mnist_gaussian')


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  variant = variant or 'digits'
  if variant not in VARIANTS:
    raise ValueError(f'unknown variant {variant!r} of dae.py; choose one of: '
                     f'{", ".join(VARIANTS)}')
  gaussian = variant.endswith('_gaussian')
  config = autoencoder.default_config('dae', variant.removesuffix('_gaussian'))
  config.dae.noise = 'gaussian' if gaussian else 'masking'
  config.dae.noise_level = 0.3 if gaussian else 0.25
  return config
