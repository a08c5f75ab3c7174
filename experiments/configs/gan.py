"""GAN with DCGAN networks, two players (jssl/methods/gan.py): non-saturating loss, k
discriminator updates per generator update, a sample grid and `frechet_distance` in the
feature space of a classifier trained on the training split.

Default (Fashion-MNIST 28x28, Debian package dataset-fashion-mnist):
  python -m jssl.main --config=experiments/configs/gan.py --workdir=runs/gan_fmnist

Variants (`gan.py:<variant>`):
  fashion_mnist  Fashion-MNIST 28x28 (default)
  digits         scikit-learn's 8x8 digits (embedded; tests and a quick look)
Any field can be overridden: --config.gan.discriminator_steps=2 --config.gan.latent_dim=100,
the stabilisers: --config.gan.loss=hinge --config.gan.spectral_norm=True
--config.gan.r1_weight=10 --config.gan.discriminator_norm=none --config.gan.generator_ema=0.999
"""

import ml_collections

from jssl import config as jssl_config


def _adam(base_learning_rate: float, batch_size: int) -> ml_collections.ConfigDict:
  """An optimizer section (config.optimizer's fields): DCGAN's Adam, lr 2e-4, beta1 0.5, at
  `batch_size` (the base rate is scaled by batch / 256)."""
  section = jssl_config.base_config().optimizer
  section.name = 'adamw'
  section.base_learning_rate = base_learning_rate * 256 / batch_size
  section.adam_b1 = 0.5
  section.weight_decay = 0.0
  section.warmup_steps = 0
  return section


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'gan'
  config.gan = ml_collections.ConfigDict({
      'latent_dim': 64,
      'generator_width': 64,  # ConvGenerator's last width (DCGAN's ngf)
      'discriminator_width': 64,  # ConvDiscriminator's first width (DCGAN's ndf)
      'discriminator_norm': 'batch',  # 'batch' (DCGAN), 'layer' or 'none'
      'discriminator_steps': 1,  # k discriminator updates per generator update
      # Stabilisers (jssl/methods/gan.py): the loss kind, R1, spectral norm, a generator EMA.
      'loss': 'non_saturating',  # 'non_saturating', 'hinge' or 'least_squares'
      'r1_weight': 0.0,  # gamma: the discriminator's loss gets gamma / 2 * R1 (needs no BatchNorm)
      'spectral_norm': False,  # every discriminator kernel divided by its top singular value
      'generator_ema': 0.0,  # decay of an EMA of the generator's weights that samples; 0: off
      'eval_samples': 2000,  # generated (and test) images the Fréchet distance compares
      'classifier_steps': 400,  # Adam steps of the feature classifier (jssl.eval.generation)
  })
  if variant in (None, '', 'fashion_mnist'):
    jssl_config.apply_data_preset(config, 'fashion_mnist')
    config.batch_size = 128
    config.num_steps = 3000
  elif variant == 'digits':
    jssl_config.apply_data_preset(config, 'digits')
    config.dataset.image_size = 8
    config.gan.latent_dim = 16
    config.gan.generator_width = 32
    config.gan.discriminator_width = 32
    config.gan.eval_samples = 359
    config.gan.classifier_steps = 200
    config.batch_size = 64
    config.num_steps = 2000
  else:
    raise ValueError(f'unknown variant {variant!r} of gan.py; choose one of: fashion_mnist, '
                     'digits')
  config.model.widths = None
  config.optimizer = _adam(2e-4, config.batch_size)  # the loop's schedule metric reads it
  config.gan.discriminator_optimizer = _adam(2e-4, config.batch_size)
  config.gan.generator_optimizer = _adam(2e-4, config.batch_size)
  config.checkpoint_every = 500
  return config
