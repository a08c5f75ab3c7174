"""MADE (Germain et al. 2015): a masked MLP whose outputs are p(x_d | x_<d) of binarized pixels,
trained under several orderings and connectivities, scored by the exact log-likelihood
averaged over its masks (jssl/methods/made.py).

Default (digits, 8x8, the embedded dataset):
  python -m jssl.main --config=experiments/configs/made.py --workdir=runs/made_digits

Variants (`made.py:<variant>`):
  digits         scikit-learn's 8x8 digits, one 256-unit hidden layer, 8 masks (default)
  fashion_mnist  Fashion-MNIST 28x28, one 500-unit hidden layer (the paper's MNIST size), 8 masks
  digits_1mask   digits with one mask in the raster order (the plain MADE)
Any field can be overridden: --config.made.num_masks=32 --config.made.hidden_sizes='(500,500)'
"""

import ml_collections

from jssl import config as jssl_config

VARIANTS = ('digits', 'fashion_mnist', 'digits_1mask')


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  variant = variant or 'digits'
  if variant not in VARIANTS:
    raise ValueError(f'unknown variant {variant!r} of made.py; choose one of: '
                     f'{", ".join(VARIANTS)}')
  # The dataset's preset first: it sets batch and optimizer fields the lines below override.
  config = jssl_config.apply_data_preset(jssl_config.base_config(), variant.removesuffix('_1mask'))
  config.method = 'made'
  config.made = ml_collections.ConfigDict({
      'hidden_sizes': (256,),
      'direct': True,  # direct input-to-output connections (the paper's)
      'num_masks': 8,  # connectivities trained, and averaged at test time
      'order_agnostic': True,  # a random pixel ordering per mask (else the raster order)
      'mask_seed': 0,
      'eval_examples': 10000,  # test images the NLL is averaged over
      'num_samples': 64,
  })
  jssl_config.apply_pixel_model_defaults(config)
  # Adam's peak rate as the VAE's on the same data: 2e-3 on digits, 1e-3 on Fashion-MNIST.
  if variant == 'fashion_mnist':
    config.model.widths = None
    config.made.hidden_sizes = (500,)
    config.num_steps = 4000
    config.optimizer.base_learning_rate = 1e-3 * 256 / 128
  else:
    config.dataset.image_size = 8
    config.num_steps = 3000
    config.optimizer.base_learning_rate = 2e-3 * 256 / 128
    if variant == 'digits_1mask':
      config.made.num_masks = 1
      config.made.order_agnostic = False
  return config
