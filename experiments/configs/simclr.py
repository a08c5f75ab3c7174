"""SimCLR (Chen et al. 2020).

Default (digits, the embedded dataset; a few minutes on a 2-core CPU):
  python -m jssl.main --config=experiments/configs/simclr.py --workdir=/tmp/jssl/simclr_digits

Variants (`simclr.py:<variant>`):
  fashion_mnist  Fashion-MNIST from its IDX files (Debian package dataset-fashion-mnist)
  cifar10        TFDS cifar10, ResNet-18 with the CIFAR stem
  imagenet2012   TFDS imagenet2012, ResNet-50, LARS, batch 4096 (the paper's setting)
Any field can be overridden: --config.batch_size=512 --config.simclr.temperature=0.2
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'simclr'
  config.simclr = ml_collections.ConfigDict({'temperature': 0.2})

  if variant in (None, '', 'digits'):
    config.dataset.name = 'digits'
    config.dataset.image_size = 16  # 8x8 digits are upsampled by the crop's resize
    config.model.encoder = 'small_cnn'
    config.model.projection_hidden_dim = 256
    config.model.projection_dim = 64
    config.augment.preset = 'small'
    config.batch_size = 256
    config.num_epochs = 120
    config.optimizer.name = 'adamw'
    config.optimizer.base_learning_rate = 2e-3
    config.optimizer.weight_decay = 1e-4
    config.optimizer.warmup_steps = 40
    config.checkpoint_every = 100
    config.eval.every = 0
  elif variant == 'fashion_mnist':
    config.dataset.name = 'fashion_mnist'
    config.dataset.data_dir = '/usr/share/datasets/fashion-mnist'
    config.dataset.image_size = 28
    config.model.encoder = 'small_cnn'
    # A narrow first block at full resolution (where XLA's CPU convs spend their time) and a
    # wide last one (a 512-d representation): 1.9x the images/s of (32, 64, 128) on 2 cores.
    config.model.widths = (16, 32, 64, 512)
    config.model.projection_hidden_dim = 512
    config.model.projection_dim = 128
    config.augment.preset = 'small'
    config.batch_size = 256
    config.num_epochs = 20
    config.optimizer.name = 'adamw'
    config.optimizer.base_learning_rate = 1e-3
    config.optimizer.weight_decay = 1e-4
    config.optimizer.warmup_steps = 200
    config.simclr.temperature = 0.5  # SimCLR's best for CIFAR-sized data (its Appendix B.9)
    config.checkpoint_every = 500
    config.eval.every = 0
  elif variant == 'cifar10':
    config.dataset.name = 'cifar10'
    config.dataset.image_size = 32
    config.model.encoder = 'resnet18'
    config.model.stem = 'cifar'
    config.augment.preset = 'simclr_cifar'
    config.batch_size = 512
    config.num_epochs = 500
    config.optimizer.name = 'lars'
    config.optimizer.base_learning_rate = 1.0  # x batch/256; SimCLR's CIFAR setting
    config.optimizer.weight_decay = 1e-6
    config.optimizer.warmup_steps = 10 * (45000 // 512)
    config.simclr.temperature = 0.5
    config.checkpoint_every = 1000
    config.eval.every = 10000
  elif variant == 'imagenet2012':
    config.dataset.name = 'imagenet2012'
    config.dataset.image_size = 224
    config.dataset.stored_size = 256  # host resize; the crop happens on device
    config.model.encoder = 'resnet50'
    config.model.stem = 'imagenet'
    config.model.dtype = 'bfloat16'
    config.model.projection_hidden_dim = 2048
    config.model.projection_dim = 128
    config.model.projection_layers = 3
    config.augment.preset = 'simclr'
    config.batch_size = 4096
    config.num_epochs = 100
    config.optimizer.name = 'lars'
    config.optimizer.base_learning_rate = 0.3  # x batch/256 (SimCLR Appendix B.1)
    config.optimizer.weight_decay = 1e-6
    config.optimizer.warmup_steps = 10 * (1281167 // 4096)
    config.simclr.temperature = 0.1
    config.checkpoint_every = 2000
    config.eval.every = 0
  else:
    raise ValueError(f'unknown variant {variant!r} of simclr.py; choose one of: digits, '
                     'fashion_mnist, cifar10, imagenet2012')
  return config
