"""Masked autoencoder (He et al. 2022): a small ViT sees 25 % of the patches, a light decoder
predicts the pixels of the masked ones (jssl/methods/mae.py).

Default (digits, 8x8, the embedded dataset; fine-tuning reported besides the probes):
  python -m jssl.main --config=experiments/configs/mae.py --workdir=runs/mae_digits \
      --config.eval.finetune="('finetune',)"

Variants (`mae.py:<variant>`):
  digits         scikit-learn's 8x8 digits, 2x2 patches (16), a 4-block 64-wide encoder (default)
  fashion_mnist  Fashion-MNIST 28x28, 4x4 patches (49), a 4-block 128-wide encoder
Any field can be overridden: --config.mae.mask_ratio=0.5 --config.mae.norm_pix=True (the
masking-ratio ablation: experiments/ablations/mae_mask_ratio.sh).
"""

import ml_collections

from jssl import config as jssl_config

VARIANTS = ('digits', 'fashion_mnist')


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  variant = variant or 'digits'
  if variant not in VARIANTS:
    raise ValueError(f'unknown variant {variant!r} of mae.py; choose one of: '
                     f'{", ".join(VARIANTS)}')
  # The dataset's preset first: it sets batch and optimizer fields the lines below override.
  config = jssl_config.apply_data_preset(jssl_config.base_config(), variant)
  config.method = 'mae'
  config.mae = ml_collections.ConfigDict({
      'patch_size': 2,
      'mask_ratio': 0.75,  # the paper's
      # Per-patch normalised targets (the paper's better setting) need patches of more than a
      # few pixels: a 2x2 patch normalised keeps only the pattern of its 4 values and loses
      # whether it is ink or paper, so the digits variant predicts the grey levels.
      'norm_pix': False,
      'hidden_dim': 64,
      'num_layers': 4,
      'num_heads': 4,
      'mlp_dim': 256,
      'decoder_hidden_dim': 32,  # the paper's decoder is narrower and shallower than the encoder
      'decoder_num_layers': 2,
      'decoder_num_heads': 4,
      'decoder_mlp_dim': 128,
      'position_embedding': 'sincos',  # fixed 2-D sine-cosine (the paper's); or 'learned'
      'class_token': False,  # the representation is the mean of the patch tokens either way
      'eval_examples': 10000,  # test images reconstruction_mse is averaged over
  })
  jssl_config.apply_pixel_model_defaults(config)
  config.optimizer.weight_decay = 0.05  # the paper's AdamW decay (kernels only)
  if variant == 'fashion_mnist':
    config.model.widths = None
    config.mae.update(patch_size=4, norm_pix=True, hidden_dim=128, mlp_dim=512,
                      decoder_hidden_dim=64, decoder_mlp_dim=256, eval_examples=2000)
    config.num_steps = 3000
    config.optimizer.base_learning_rate = 1e-3 * 256 / 128  # Adam at 1e-3
  else:
    config.dataset.image_size = 8
    config.num_steps = 1500
    config.optimizer.base_learning_rate = 1e-3 * 256 / 128  # Adam at 1e-3
  return config
