"""The shape of a jssl config, and its validation before anything is compiled.

Experiment configs (`experiments/configs/*.py`) start from `base_config()` and set fields.
`validate_config` checks a finished config and raises `ConfigError` with a message naming the
field and what would be right.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict


class ConfigError(ValueError):
  """A config field has a value jssl cannot run with."""


def base_config() -> ml_collections.ConfigDict:
  """Every field a run reads, with defaults. Method configs add `config.<method>`."""
  c = ml_collections.ConfigDict()
  c.method = ''
  c.seed = 0

  c.dataset = ml_collections.ConfigDict()
  c.dataset.name = 'digits'
  c.dataset.data_dir = config_dict.placeholder(str)  # IDX dir (fashion_mnist) or TFDS data_dir
  c.dataset.image_size = 32  # side of the views the model sees
  c.dataset.stored_size = config_dict.placeholder(int)  # TFDS: host resize of varying sizes
  # Text: WordPiece vocabulary trained on the corpus's training split, and tokens per segment
  # (BERT packs [CLS] A [SEP] B [SEP]: 2 * max_length + 3 positions).
  c.dataset.vocab_size = 8192
  c.dataset.max_length = 64
  # Graphs: size of WordNet's gloss features (TF-IDF reduced by truncated SVD).
  c.dataset.feature_dim = 256
  # Worker processes that read and decode batches (grain's mp_prefetch); 0 reads them on a
  # thread of the training process. The batches are the same for any number: a run may
  # resume with another.
  c.dataset.workers = 0

  c.model = ml_collections.ConfigDict()
  c.model.encoder = 'small_cnn'
  c.model.stem = 'cifar'
  c.model.width_multiplier = 1
  c.model.widths = config_dict.placeholder(tuple)  # small_cnn block widths (default 32, 64, 128)
  c.model.dtype = 'float32'  # or 'bfloat16' compute (params stay float32)
  # small_cnn: first and <=4x4 convolutions as matmuls (im2col), 20-25% faster on CPU and equal
  # to nn.Conv up to float rounding (experiments/BENCHMARKS.md). False gives nn.Conv, the form
  # of the tables made before 2026-12-01 (the README marks which rows).
  c.model.small_cnn_matmul_convs = True
  c.model.projection_hidden_dim = 2048
  c.model.projection_dim = 128
  c.model.projection_layers = 2  # Dense layers in the projection head (SimCLR v1: 2, v2: 3)

  c.augment = ml_collections.ConfigDict()
  c.augment.preset = 'simclr'
  # Optional overrides applied to every view of the preset (None keeps the preset's value).
  for name in ('flip_prob', 'jitter_prob', 'brightness', 'contrast', 'saturation', 'hue',
               'grayscale_prob', 'blur_prob', 'solarize_prob'):
    c.augment[name] = config_dict.placeholder(float)
  c.augment.crop_scale = config_dict.placeholder(tuple)
  c.augment.crop_ratio = config_dict.placeholder(tuple)
  for name in ('cutout_prob', 'cutout_size', 'rotate_prob'):
    c.augment[name] = config_dict.placeholder(float)
  # '+'-joined transformations ('crop+color'; jssl.augment.COMPOSE_TRANSFORMS) replacing the
  # preset, for augmentation-composition studies (SimCLR Fig. 5); '' uses the preset.
  c.augment.compose = ''
  # Multi-crop (SwAV, DINO): methods that use it take the preset's two (global) views followed
  # by `num_local_crops` small views of the first view's kind, `local_crop_size` pixels a side
  # (None: image_size * 96 / 224, the papers' ratio) cropped from `local_crop_scale` of the area.
  c.augment.num_local_crops = 0
  c.augment.local_crop_size = config_dict.placeholder(int)
  c.augment.local_crop_scale = (0.05, 0.4)

  c.batch_size = 256  # global batch over all devices and hosts
  c.num_epochs = 100
  c.num_steps = -1  # > 0 overrides num_epochs

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = 'lars'
  c.optimizer.base_learning_rate = 0.3  # peak rate = base * batch_size / 256
  c.optimizer.weight_decay = 1e-6
  c.optimizer.momentum = 0.9
  c.optimizer.adam_b1 = 0.9  # adamw's first-moment decay (DCGAN's players use 0.5)
  c.optimizer.trust_coefficient = 0.001
  c.optimizer.warmup_steps = 0
  c.optimizer.grad_clip_norm = 0.0  # 0 disables

  c.online_probe = ml_collections.ConfigDict()
  c.online_probe.learning_rate = 1e-3

  c.log_every = 1
  c.checkpoint_every = 1000
  c.keep_checkpoints = 3

  c.eval = ml_collections.ConfigDict()
  c.eval.every = 0  # steps between evaluations; 0 = only at the end
  c.eval.at_start = True  # evaluate the randomly initialised encoder first (step 0)
  c.eval.batch_size = 512
  c.eval.knn_k = 200
  c.eval.knn_temperature = 0.07
  c.eval.linear_steps = 200
  c.eval.linear_l2_grid = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
  # Probes on another labelled dataset of the same modality ('' = the training dataset), e.g.
  # a language model pre-trained on a corpus and probed on WordNet gloss categories.
  c.eval.dataset = ''
  # Fine-tuning protocols (jssl.eval.finetune): any of 'finetune' (every training label),
  # 'semi_1pct', 'semi_10pct' (a class-balanced 1 % / 10 % subset fixed by finetune_seed).
  c.eval.finetune = ()
  c.eval.finetune_steps = 500
  c.eval.finetune_batch_size = 256
  c.eval.finetune_learning_rate = 1e-3
  c.eval.finetune_seed = 0
  return c


DATA_PRESETS = ('digits', 'fashion_mnist', 'cifar10')


def apply_pixel_model_defaults(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Training fields shared by the models of the stored pixels (autoencoders, MADE, PixelCNN),
  set after `apply_data_preset`: Adam without weight decay, 100 warm-up steps, batch 128,
  checkpoints every 500 steps, the online probe at 1e-3. They read no augmented views; the
  augmentation preset is left valid ('small') and unused.

  Returns:
    `config`, for chaining.
  """
  config.augment.preset = 'small'
  config.online_probe.learning_rate = 1e-3
  config.optimizer.name = 'adamw'
  config.optimizer.weight_decay = 0.0
  config.optimizer.warmup_steps = 100
  config.batch_size = 128
  config.checkpoint_every = 500
  return config


def apply_data_preset(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """Sets dataset, model, augmentation, batch and optimizer fields shared by every method's
  config for one dataset; method configs then set their own section and any differences.

  Args:
    config: a `base_config()` to modify in place.
    name: 'digits' (embedded, 16x16 views, small CNN), 'fashion_mnist' (IDX files, 28x28,
      small CNN 16-32-64-512), 'emoji' (rendered from Debian's colour emoji font, 32x32 RGB,
      small CNN) or 'cifar10' (TFDS, ResNet-18 with the CIFAR stem, LARS).

  Returns:
    `config`, for chaining.
  """
  if name == 'digits':
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
  elif name == 'fashion_mnist':
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
    config.checkpoint_every = 500
    config.eval.every = 0
  elif name == 'emoji':
    config.dataset.name = 'emoji'
    config.dataset.image_size = 32
    config.model.encoder = 'small_cnn'
    config.model.projection_hidden_dim = 512
    config.model.projection_dim = 128
    config.augment.preset = 'simclr_cifar'
    config.batch_size = 256
    config.num_epochs = 60
    config.optimizer.name = 'adamw'
    config.optimizer.base_learning_rate = 2e-3
    config.optimizer.weight_decay = 1e-4
    config.optimizer.warmup_steps = 40
    config.checkpoint_every = 100
    config.eval.every = 0
  elif name == 'cifar10':
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
    config.checkpoint_every = 1000
    config.eval.every = 10000
  else:
    raise ValueError(f'unknown data preset {name!r}; choose one of {DATA_PRESETS + ("emoji",)}.')
  return config


# Nodes of the graph presets: a graph method's batch is all of them, rounded down to a
# multiple of 8 devices (it only paces the loop: one step is one pass over the graph).
GRAPH_NUM_NODES = {'wordnet_nouns': 82115, 'polblogs': 1490, 'football': 115, 'toy': 64}


def apply_graph_preset(config: ml_collections.ConfigDict, name: str, *,
                       peak_learning_rate: float) -> ml_collections.ConfigDict:
  """Sets the fields shared by the transductive graph methods' configs (DGI, GAE) for graph
  `name` of `GRAPH_NUM_NODES`: the dataset (256-d features on WordNet, 8-d on the toy graph),
  plain Adam at `peak_learning_rate` for the whole graph, no warm-up, the batch of every node,
  a step-0 evaluation (the random-init encoder), the probes' k (1 on football: one training
  node per conference), logging and checkpoints; the toy graph's small-test settings. Set
  `num_steps` and method fields after it.

  Returns:
    `config`, for chaining.
  """
  if name not in GRAPH_NUM_NODES:
    raise ValueError(f'unknown graph preset {name!r}; choose one of {list(GRAPH_NUM_NODES)}.')
  config.dataset.name = name
  config.augment.preset = 'small'  # unused (no image views); kept valid
  config.optimizer.name = 'adamw'
  config.optimizer.weight_decay = 0.0  # plain Adam, as the graph papers
  config.optimizer.warmup_steps = 0
  config.batch_size = GRAPH_NUM_NODES[name] // 8 * 8
  config.eval.at_start = True  # the step-0 record is the random-init encoder baseline
  config.eval.batch_size = 1024
  config.eval.knn_k = {'football': 1, 'toy': 5}.get(name, 20)
  config.log_every = 10
  config.checkpoint_every = 100
  if name == 'wordnet_nouns':
    config.dataset.feature_dim = 256
  elif name == 'toy':
    config.dataset.feature_dim = 8
    config.eval.batch_size = 64
    config.eval.linear_steps = 50
    config.log_every = 1
    config.checkpoint_every = 10
  # The loop scales the rate by batch / 256; the papers' rates are for the whole graph.
  config.optimizer.base_learning_rate = peak_learning_rate * 256 / config.batch_size
  return config


def apply_adam(config: ml_collections.ConfigDict, *, peak_learning_rate: float,
               warmup_steps: int) -> ml_collections.ConfigDict:
  """Adam without weight decay reaching `peak_learning_rate` after `warmup_steps` (cosine
  decay after), at the config's batch size: call it after `config.batch_size` is final.
  The papers of CPC, DIM, AMDIM and colorization train with Adam.

  Returns:
    `config`, for chaining.
  """
  config.optimizer.name = 'adamw'
  config.optimizer.weight_decay = 0.0
  config.optimizer.warmup_steps = warmup_steps
  config.optimizer.base_learning_rate = peak_learning_rate * 256 / config.batch_size
  return config


def apply_small_multicrop(config: ml_collections.ConfigDict, dataset: str) -> None:
  """Multi-crop (SwAV, DINO) for the small grayscale datasets: 2 local crops of 10-40% of the
  image, 8 px for digits (half the 16-px global side, a quarter of the encoder cost each) and
  the papers' 96/224 of the side for Fashion-MNIST (12 px). Below ~10% a crop of a tiny
  grayscale image is a few blurred pixels, hence 0.1 rather than the papers' 0.05."""
  if dataset not in ('digits', 'fashion_mnist'):
    raise ValueError(f'apply_small_multicrop: {dataset!r} is not digits or fashion_mnist.')
  config.augment.num_local_crops = 2
  config.augment.local_crop_scale = (0.1, 0.4)
  if dataset == 'digits':
    config.augment.local_crop_size = 8


_EXAMPLE_DATASETS = {'image': 'digits, fashion_mnist, cifar10',
                     'series': 'basic_motions, japanese_vowels',
                     'text': 'austen_wordnet, wordnet_glosses, fortunes',
                     'graph': 'wordnet_nouns, polblogs, football'}


def _require(condition: bool, message: str) -> None:
  if not condition:
    raise ConfigError(message)


def _missing_fields(reference: ml_collections.ConfigDict, config, prefix: str = '') -> list[str]:
  """Dotted names of `reference`'s fields that `config` does not have."""
  missing = []
  for key, value in reference.items():
    if key not in config:
      missing.append(prefix + key)
    elif isinstance(value, ml_collections.ConfigDict):
      if isinstance(config[key], ml_collections.ConfigDict):
        missing += _missing_fields(value, config[key], f'{prefix}{key}.')
      else:
        missing.append(prefix + key)
  return missing


def validate_config(config: ml_collections.ConfigDict, *, device_count: int,
                    process_count: int = 1) -> None:
  """Raises ConfigError for the first problem found; silent when the config can run."""
  # Imported here: the lookup tables live with the code they describe.
  from jssl import augment, data, methods, models  # pylint: disable=g-import-not-at-top
  from jssl.train import optim  # pylint: disable=g-import-not-at-top

  missing = _missing_fields(base_config(), config)
  _require(not missing,
           f'the config lacks the fields {", ".join(missing[:8])}'
           f'{" and more" if len(missing) > 8 else ""}; a jssl config starts from '
           'jssl.config.base_config() and sets fields on it (see experiments/configs/simclr.py).')

  _require(config.method in methods.METHODS,
           f'config.method={config.method!r} is not a known method; choose one of '
           f'{sorted(methods.METHODS)} (--config.method=NAME).')
  _require(config.get(config.method) is not None,
           f'config.{config.method} is missing: the method {config.method!r} reads its '
           f'hyperparameters from config.{config.method}; start from '
           f'experiments/configs/{config.method}.py.')
  try:
    data.check_dataset_name(config.dataset.name)
  except ValueError as error:
    raise ConfigError(f'config.dataset.name={config.dataset.name!r} is not a known dataset: '
                      f'{error}') from None
  wanted = methods.modalities(config.method)
  for field in ('dataset.name', 'eval.dataset'):
    name = config.dataset.name if field == 'dataset.name' else config.eval.get('dataset')
    if not name:
      continue
    if field == 'eval.dataset':
      try:
        data.check_dataset_name(name)
      except ValueError as error:
        raise ConfigError(f'config.eval.dataset={name!r} is not a known dataset: {error}') from None
    _require(data.modality_of(name) in wanted,
             f'config.{field}={name!r} is a {data.modality_of(name)} dataset, but '
             f'{config.method} trains on {" or ".join(wanted)} data; choose a {wanted[0]} dataset '
             f'(e.g. {_EXAMPLE_DATASETS[wanted[0]]}) or a {data.modality_of(name)} method.')
  eval_name = config.eval.get('dataset')
  _require(not eval_name or data.modality_of(eval_name) == data.modality_of(config.dataset.name),
           f'config.eval.dataset={eval_name!r} is {data.modality_of(eval_name or "")} data but '
           f'the run trains on {config.dataset.name!r} ({data.modality_of(config.dataset.name)}); '
           'probes read the representation of the data the encoder was trained on.')
  _require(config.dataset.image_size >= 4,
           f'config.dataset.image_size={config.dataset.image_size} is too small; use >= 4.')
  _require(config.model.encoder in models.ENCODERS,
           f'config.model.encoder={config.model.encoder!r} is unknown; choose one of '
           f'{sorted(models.ENCODERS)}.')
  _require(config.model.stem in models.STEMS,
           f'config.model.stem={config.model.stem!r} is unknown; choose one of {models.STEMS}.')
  _require(config.model.dtype in models.DTYPES,
           f'config.model.dtype={config.model.dtype!r} is unknown; choose one of '
           f'{sorted(models.DTYPES)}.')
  _require(config.model.projection_layers >= 1,
           f'config.model.projection_layers={config.model.projection_layers} must be >= 1.')
  _require(config.augment.num_local_crops >= 0,
           f'config.augment.num_local_crops={config.augment.num_local_crops} must be >= 0.')
  _require(config.augment.local_crop_size is None or
           1 <= config.augment.local_crop_size <= config.dataset.image_size,
           f'config.augment.local_crop_size={config.augment.local_crop_size} must be in '
           f'[1, config.dataset.image_size={config.dataset.image_size}] (or None for '
           'image_size * 96 / 224).')
  _require(config.augment.preset in augment.PRESETS,
           f'config.augment.preset={config.augment.preset!r} is unknown; choose one of '
           f'{sorted(augment.PRESETS)}.')
  if config.augment.get('compose'):
    try:
      augment.compose_views(config.augment.compose, out_size=config.dataset.image_size)
    except ValueError as error:
      raise ConfigError(f'config.{error}') from None
  _require(config.optimizer.name in optim.OPTIMIZERS,
           f'config.optimizer.name={config.optimizer.name!r} is unknown; choose one of '
           f'{optim.OPTIMIZERS}.')
  _require(config.batch_size > 0, f'config.batch_size={config.batch_size} must be positive.')
  _require(config.batch_size % device_count == 0,
           f'config.batch_size={config.batch_size} is not divisible by the number of devices '
           f'({device_count}): each device must get the same share of the global batch. Use a '
           f'multiple of {device_count}, e.g. --config.batch_size='
           f'{max(device_count, config.batch_size // device_count * device_count)}.')
  _require(config.batch_size % process_count == 0,
           f'config.batch_size={config.batch_size} is not divisible by the number of processes '
           f'({process_count}).')
  _require(config.eval.batch_size > 0 and config.eval.batch_size % device_count == 0,
           f'config.eval.batch_size={config.eval.batch_size} must be a positive multiple of the '
           f'number of devices ({device_count}).')
  _require(config.num_steps > 0 or config.num_epochs > 0,
           'the run has no steps: set --config.num_epochs=N or --config.num_steps=N (> 0).')
  _require(isinstance(config.dataset.workers, int) and config.dataset.workers >= 0,
           f'config.dataset.workers={config.dataset.workers!r} must be an integer >= 0 (0 reads '
           'batches in the training process; N > 0 starts N worker processes).')
  for field in ('log_every', 'checkpoint_every', 'keep_checkpoints'):
    _require(config[field] > 0, f'config.{field}={config[field]} must be positive.')
  _require(config.eval.every >= 0,
           f'config.eval.every={config.eval.every} must be >= 0 (0 evaluates only at the end).')
  _require(config.eval.knn_k > 0, f'config.eval.knn_k={config.eval.knn_k} must be positive.')
  _require(config.optimizer.base_learning_rate > 0,
           f'config.optimizer.base_learning_rate={config.optimizer.base_learning_rate} must be '
           'positive.')


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads `path/to/config.py[:variant]` the way `--config=` does (for notebooks and scripts).

  A relative path is looked up from the working directory, then from the repository root
  (the directory above the `jssl` package), so notebooks can say
  `load_config('experiments/configs/simclr.py:fashion_mnist')` from anywhere in the checkout.
  """
  import importlib.util  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top

  path, _, variant = spec.partition(':')
  if not os.path.isabs(path) and not os.path.exists(path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, path)
  if not os.path.exists(path):
    raise FileNotFoundError(f'config file {spec.partition(":")[0]!r} not found (also looked at '
                            f'{path}).')
  module_spec = importlib.util.spec_from_file_location('jssl_config_' + os.path.basename(path)[:-3],
                                                       path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(variant or None)
