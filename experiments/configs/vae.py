"""Variational autoencoder (Kingma & Welling 2014), Bernoulli decoder on dynamically binarized
images; ELBO, IWAE bound, bits/dim, reconstructions and samples (jssl/methods/vae.py).

Default (digits, 8x8, the embedded dataset; about a minute on a 2-core CPU):
  python -m jssl.main --config=experiments/configs/vae.py --workdir=runs/vae_digits

Variants (`vae.py:<variant>`):
  digits         scikit-learn's 8x8 digits (default)
  fashion_mnist  Fashion-MNIST 28x28 (Debian package dataset-fashion-mnist)
Any field can be overridden: --config.vae.latent_dim=16 --config.vae.iwae_samples=1000
"""

import ml_collections

from jssl import config as jssl_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'vae'
  config.vae = ml_collections.ConfigDict({
      'latent_dim': 16,
      'encoder_width': 32,  # ConvEncoder's first width (doubles per stride-2 layer)
      'decoder_width': 32,  # ConvGenerator's last width (doubles towards the start grid)
      'iwae_samples': 100,  # k of the importance-weighted bound (Burda et al. used 5000)
      'iwae_chunk': 25,  # samples decoded at once (memory)
      'eval_examples': 10000,  # test images the bounds are averaged over (at most the split)
  })
  config.augment.preset = 'small'  # unused (no image views); kept valid
  config.online_probe.learning_rate = 1e-3
  config.optimizer.name = 'adamw'
  config.optimizer.weight_decay = 0.0
  if variant in (None, '', 'digits'):
    jssl_config.apply_data_preset(config, 'digits')
    config.dataset.image_size = 8
    config.vae.latent_dim = 8
    config.batch_size = 128
    config.num_steps = 1500
    config.optimizer.base_learning_rate = 2e-3 * 256 / 128
  elif variant == 'fashion_mnist':
    jssl_config.apply_data_preset(config, 'fashion_mnist')
    config.model.widths = None
    config.vae.eval_examples = 2000  # 2,000 x 100 decoder passes per evaluation on CPU
    config.batch_size = 128
    config.num_steps = 4000
    config.optimizer.base_learning_rate = 1e-3 * 256 / 128
  else:
    raise ValueError(f'unknown variant {variant!r} of vae.py; choose one of: digits, '
                     'fashion_mnist')
  config.optimizer.warmup_steps = 100
  config.optimizer.weight_decay = 0.0
  config.checkpoint_every = 500
  return config
