"""Gated PixelCNN (van den Oord et al. 2016): exact likelihood in raster order, vertical and
horizontal stacks without a blind spot (jssl/methods/pixelcnn.py); binarized grey images, or
8-bit colour images with the masks across R, G, B.

Default (digits, 8x8, the embedded dataset):
  python -m jssl.main --config=experiments/configs/pixelcnn.py --workdir=runs/pixelcnn_digits

Variants (`pixelcnn.py:<variant>`):
  digits         scikit-learn's 8x8 digits, binarized, 6 gated layers of 32 channels (default)
  fashion_mnist  Fashion-MNIST 28x28, binarized, 8 gated layers of 32 channels
  emoji          colour emoji rendered at 16x16 RGB, 256 levels, 8 gated layers of 48 channels
  cifar10        TFDS cifar10 32x32 RGB, 256 levels, 12 gated layers of 120 channels
Any field can be overridden: --config.pixelcnn.features=64 --config.pixelcnn.num_layers=10,
--config.pixelcnn.levels=256 (the 8-bit values instead of binarized ones)
"""

import ml_collections

from jssl import config as jssl_config

VARIANTS = ('digits', 'fashion_mnist', 'emoji', 'cifar10')


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  variant = variant or 'digits'
  if variant not in VARIANTS:
    raise ValueError(f'unknown variant {variant!r} of pixelcnn.py; choose one of: '
                     f'{", ".join(VARIANTS)}')
  # The dataset's preset first: it sets batch and optimizer fields the lines below override.
  config = jssl_config.apply_data_preset(jssl_config.base_config(), variant)
  config.method = 'pixelcnn'
  config.pixelcnn = ml_collections.ConfigDict({
      'levels': 2,  # values per sub-pixel: 2 (binarized) or 256 (8-bit)
      'features': 32,  # channels of both stacks
      'num_layers': 6,  # gated layers; the first is type A
      'kernel_size': 3,  # of the type-B layers
      'first_kernel_size': 7,  # of the type-A layer (the paper's 7x7)
      'eval_examples': 10000,  # test images the NLL is averaged over
      'num_samples': 64,
  })
  jssl_config.apply_pixel_model_defaults(config)
  config.optimizer.base_learning_rate = 1e-3 * 256 / 64  # Adam at 1e-3
  config.batch_size = 64
  if variant == 'fashion_mnist':
    config.model.widths = None
    config.pixelcnn.num_layers = 8
    config.pixelcnn.eval_examples = 2000
    config.num_steps = 3000
  elif variant == 'emoji':  # 8-bit colour: three groups of 16 features
    config.model.widths = None
    config.pixelcnn.update(levels=256, num_layers=8, features=48, num_samples=32)
    config.dataset.stored_size = config.dataset.image_size = 16  # a quarter of 32x32's cost
    config.num_steps = 1000
  elif variant == 'cifar10':  # 8-bit colour: three groups of 40 features
    config.model.widths = None
    config.pixelcnn.update(levels=256, num_layers=12, features=120)
    config.num_steps = 50000
  else:
    config.dataset.image_size = 8
    config.num_steps = 2000
  return config
