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
  config.simclr = ml_collections.ConfigDict({
      'temperature': 0.2,
      # 'dense' builds the 2N x 2N similarity matrix; 'blockwise' computes the same loss in
      # tiles of loss_block_size^2 (memory linear in the batch), for very large batches.
      'loss_impl': 'dense',
      'loss_block_size': 1024,
  })

  if variant in (None, '', 'digits'):
    jssl_config.apply_data_preset(config, 'digits')
  elif variant == 'fashion_mnist':
    jssl_config.apply_data_preset(config, 'fashion_mnist')
    config.simclr.temperature = 0.5  # SimCLR's best for CIFAR-sized data (its Appendix B.9)
  elif variant == 'cifar10':
    jssl_config.apply_data_preset(config, 'cifar10')
    config.simclr.temperature = 0.5
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
