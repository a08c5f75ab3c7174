"""SimSiam (Chen & He 2021): siamese network, predictor and stop-gradient, nothing else.

Default (digits, the embedded dataset):
  python -m jssl.main --config=experiments/configs/simsiam.py --workdir=/tmp/jssl/simsiam_digits

Variants (`simsiam.py:<variant>`):
  fashion_mnist  Fashion-MNIST from its IDX files (Debian package dataset-fashion-mnist)
  cifar10        TFDS cifar10, ResNet-18 with the CIFAR stem, SGD, the paper's CIFAR heads
Any field can be overridden: --config.simsiam.predictor_hidden_dim=128
Collapse ablation (no stop-gradient): --config.simsiam.stop_gradient=False
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'simsiam'
  config.simsiam = ml_collections.ConfigDict({
      'predictor_hidden_dim': 64,  # the paper's bottleneck: projection_dim / 4
      'stop_gradient': True,  # False is the ablation that collapses
  })
  dataset = variant or 'digits'
  if dataset not in jssl_config.DATA_PRESETS:
    raise ValueError(f'unknown variant {variant!r} of simsiam.py; choose one of: digits, '
                     'fashion_mnist, cifar10')
  jssl_config.apply_data_preset(config, dataset)
  # The paper's CIFAR projector: 2 layers (BN on the output, see jssl/methods/simsiam.py),
  # output as wide as the hidden layer.
  config.model.projection_layers = 2
  if dataset == 'digits':
    config.model.projection_dim = 256  # = projection_hidden_dim
  elif dataset == 'fashion_mnist':
    config.model.projection_dim = 512
    config.simsiam.predictor_hidden_dim = 128
  elif dataset == 'cifar10':
    config.model.projection_hidden_dim = 2048
    config.model.projection_dim = 2048
    config.simsiam.predictor_hidden_dim = 512
    # The paper's CIFAR-10 optimizer: SGD, lr 0.03 x batch/256, weight decay 5e-4, momentum
    # 0.9, cosine decay, no warm-up.
    config.optimizer.name = 'sgd'
    config.optimizer.base_learning_rate = 0.03
    config.optimizer.weight_decay = 5e-4
    config.optimizer.momentum = 0.9
    config.optimizer.warmup_steps = 0
  return config
