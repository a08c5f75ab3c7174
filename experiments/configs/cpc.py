"""Contrastive Predictive Coding (van den Oord et al. 2018) on time series and on images.

Default (JapaneseVowels from the sktime wheel: 12-channel LPC series of 7-29 steps, 9 speakers):
  python -m jssl.main --config=experiments/configs/cpc.py --workdir=/tmp/jssl/cpc_vowels

Variants (`cpc.py:<variant>`):
  japanese_vowels  (the default) 1-D conv encoder (stride 1) + GRU, 1-4 steps ahead
  basic_motions    BasicMotions (6 channels, 100 steps, 4 activities), stride 2, 1-6 steps
  digits           patch CPC: 3x3 grids of 8-pixel patches (every 4) of 16x16 views, 1-2 rows
  fashion_mnist    patch CPC: 6x6 grids of 8-pixel patches of 28x28 views, 1-4 rows below
  cifar10          patch CPC: 7x7 grids of 8-pixel patches of 32x32 views, ResNet-18, 1-5 rows

The image variants encode every patch with the config's image encoder and scale down the
paper's 7x7 grid of 64-pixel patches every 32 pixels.

Any field can be overridden: --config.cpc.prediction_steps=8 (the horizon K; the paper's
ablation), --config.cpc.represent=encoder (probe mean z_t instead of mean c_t),
--config.cpc.crop_length=64 (train on random windows), --config.dataset.name=ts:NAME with
--config.dataset.data_dir=DIR (any UEA/UCR archive dataset).

Optimiser: Adam (the paper's), peak 1e-3 after 50 warm-up steps, cosine decay.
"""

import ml_collections

from jssl import config as jssl_config

SERIES = ('japanese_vowels', 'basic_motions')


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'cpc'
  config.cpc = ml_collections.ConfigDict({
      'prediction_steps': 4,  # K: W_1 .. W_K predict 1 .. K steps (or grid rows) ahead
      'temperature': 1.0,  # divides the log-bilinear scores; CPC's critic is 1
      'context_dim': 64,  # width of the GRU (sequences) or of the row-causal convs (images)
      # Sequences: the 1-D conv encoder (one entry per layer) and the training window.
      'encoder_widths': (64, 64, 64),
      'encoder_kernel_sizes': (3, 3, 3),
      'encoder_strides': (1, 1, 1),
      'crop_length': 0,  # 0: whole series; else a random window of this many steps
      'represent': 'context',  # probe the mean c_t ('context') or the mean z_t ('encoder')
      # Images: the patch grid and the context network's depth.
      'patch_size': 8,
      'patch_stride': 4,
      'context_layers': 2,
  })
  dataset = variant or 'japanese_vowels'
  if dataset not in SERIES + jssl_config.DATA_PRESETS:
    raise ValueError(f'unknown variant {variant!r} of cpc.py; choose one of: '
                     f'{", ".join(SERIES + jssl_config.DATA_PRESETS)}')
  if dataset in SERIES:
    config.dataset.name = dataset
    config.batch_size = 64 if dataset == 'japanese_vowels' else 32
    config.num_steps = 600
    config.checkpoint_every = 200
    config.eval.knn_k = 20  # a few hundred training series
    if dataset == 'basic_motions':
      config.cpc.encoder_kernel_sizes = (4, 3, 3)
      config.cpc.encoder_strides = (2, 1, 1)
      config.cpc.prediction_steps = 6
  else:
    jssl_config.apply_data_preset(config, dataset)
    config.augment.preset = 'crop_flip'
    config.cpc.prediction_steps = {'digits': 2, 'fashion_mnist': 4, 'cifar10': 5}[dataset]
    if dataset == 'digits':
      config.num_epochs = 60
    elif dataset == 'fashion_mnist':
      config.batch_size = 128
    else:
      config.cpc.context_dim = 256
  return jssl_config.apply_adam(config, peak_learning_rate=1e-3, warmup_steps=50)
