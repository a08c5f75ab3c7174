"""Autoencoder: a convolutional encoder to a code, a transposed-conv decoder back, trained to
reconstruct its input (jssl/methods/autoencoder.py); the code is the representation.

Default (digits, 8x8, the embedded dataset):
  python -m jssl.main --config=experiments/configs/ae.py --workdir=runs/ae_digits

Variants (`ae.py:<variant>`):
  digits         scikit-learn's 8x8 digits (default)
  fashion_mnist  Fashion-MNIST 28x28 (Debian package dataset-fashion-mnist)
Any field can be overridden: --config.ae.latent_dim=32 --config.ae.loss=mse
The denoising autoencoder is experiments/configs/dae.py (the same fields + the noise).
"""

import ml_collections

from jssl.methods import autoencoder


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  return autoencoder.default_config('ae', variant)
