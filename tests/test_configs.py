"""A two-step smoke run of every experiment config, on tiny offline stand-ins for its data.

cifar10 and imagenet2012 are written as real TFDS datasets (ArrayRecord, the catalog's name
and version, built by a TFDS builder without TensorFlow); Fashion-MNIST as real IDX files.
Runs in-process on the 8 simulated devices of conftest.py.

SimCLR's digits and Fashion-MNIST configs run the whole `train_and_evaluate` (checkpoints,
kNN, linear probe). Every other config runs two train steps and an encoding of a batch through
`Run` (evaluation is the same code for every config). SimCLR's cifar10 config trains its
ResNet-18; every other ResNet config (ImageNet's ResNet-50 included) has the small CNN swapped
in: compiling a ResNet step takes a minute or more on this 2-core CPU, and the ResNets'
layouts, stems and bfloat16 compute are tested in tests/models. Everything else of those
configs (data, augmentation, dtype, optimizer, method sizes such as queues and banks) is used
as written.
"""

import glob
import gzip
import importlib.util
import math
import os

import numpy as np
import pytest
from PIL import Image

from jssl.config import load_config
from jssl.train.loop import Run
from jssl.train.loop import train_and_evaluate
from jssl.train.metrics import read_metrics

tfds = pytest.importorskip('tensorflow_datasets')

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, 'experiments', 'configs', '*.py')))


def _load_config_module(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _variants(module):
  """Variants listed in the config's docstring (lines '  name  description'), plus default."""
  doc = module.__doc__.split('Variants', 1)[1].split('\n\n')[0]
  names = [line.split()[0] for line in doc.splitlines()[1:] if line.startswith('  ')]
  return [None] + names


def _fake_tfds_builder(name, shape, splits):
  """A builder with the catalog's name and version whose examples are a few random images."""
  real = tfds.builder_cls(name)

  with tfds.core.registered.skip_registration():

    class Fake(tfds.core.GeneratorBasedBuilder):
      VERSION = real.VERSION

      def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=shape),
            'label': tfds.features.ClassLabel(num_classes=10)}))

      def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split, count) for split, count in splits.items()}

      def _generate_examples(self, split, count):
        rng = np.random.default_rng(len(split))
        for i in range(count):
          height, width = (shape[0] or 40 + i % 7), (shape[1] or 36 + i % 5)
          pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
          yield f'{split}{i}', {'image': Image.fromarray(pixels), 'label': i % 10}

  Fake.name = name
  return Fake


@pytest.fixture(scope='module')
def tfds_dir(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  _fake_tfds_builder('cifar10', (32, 32, 3), {'train': 40, 'test': 16})(
      data_dir=data_dir).download_and_prepare(file_format='array_record')
  _fake_tfds_builder('imagenet2012', (None, None, 3), {'train': 200, 'validation': 16})(
      data_dir=data_dir).download_and_prepare(file_format='array_record')
  return data_dir


def _write_idx(path, array):
  header = bytes([0, 0, 8, array.ndim]) + b''.join(int(d).to_bytes(4, 'big') for d in array.shape)
  with gzip.open(path + '.gz', 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope='module')
def fashion_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp('fashion'))
  rng = np.random.default_rng(0)
  for prefix, count in (('train', 5040), ('t10k', 16)):  # 5000 go to validation
    _write_idx(os.path.join(directory, f'{prefix}-images-idx3-ubyte'),
               rng.integers(0, 256, size=(count, 28, 28)))
    _write_idx(os.path.join(directory, f'{prefix}-labels-idx1-ubyte'), np.arange(count) % 10)
  return directory


def _cases():
  for path in CONFIGS:
    for variant in _variants(_load_config_module(path)):
      yield pytest.param(path, variant, id=f'{os.path.basename(path)}:{variant or "default"}')


@pytest.mark.parametrize('path,variant', list(_cases()))
def test_two_steps(path, variant, tfds_dir, fashion_dir, tmp_path):
  config = load_config(f'{path}:{variant}' if variant else path)
  if config.dataset.name == 'fashion_mnist':
    config.dataset.data_dir = fashion_dir
  elif config.dataset.name != 'digits':
    config.dataset.data_dir = tfds_dir
  if config.dataset.image_size > 32:  # ImageNet-sized models: keep the smoke test cheap
    config.dataset.image_size = 32
    config.dataset.stored_size = 36
  config.num_steps = 2
  config.batch_size = 16
  if config.method != 'simclr' or config.model.encoder != 'small_cnn':
    # One ResNet train step is compiled (SimCLR's cifar10 config, ResNet-18): every other
    # ResNet config gets the small CNN, as compiling a ResNet step costs a minute or more of
    # this CPU (ResNet-50's layout, the ImageNet stem and bfloat16 are tested in tests/models).
    resnet = config.method == 'simclr' and config.dataset.name == 'cifar10'
    _two_steps_and_encode(config, str(tmp_path), small_encoder=not resnet)
    return
  config.checkpoint_every = 1
  config.eval.at_start = False
  config.eval.batch_size = 16
  config.eval.linear_steps = 3
  config.eval.linear_l2_grid = (1e-4,)
  results = train_and_evaluate(config, str(tmp_path), progress=False)
  losses = [r['loss'] for r in read_metrics(str(tmp_path / 'metrics.jsonl')) if 'loss' in r]
  assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
  assert 0.0 <= results['knn_top1'] <= 1.0 and 0.0 <= results['linear_top1'] <= 1.0


def _two_steps_and_encode(config, workdir, small_encoder):
  if small_encoder and config.model.encoder.startswith('resnet'):
    config.model.encoder = 'small_cnn'
    config.model.widths = (8, 16)
  run = Run(config, workdir)
  try:
    losses = []
    for _ in range(2):
      metrics = run.advance(next(run.iterator))
      losses.append(float(metrics['loss']))
  finally:
    run.iterator.close()
  assert all(math.isfinite(x) for x in losses), losses
  assert int(run.state.nonfinite_step) == -1
  images = run.dataset.test.get_batch(np.arange(16))['image']
  features, _ = run.feature_fn(run.state.params, run.state.batch_stats, run.state.probe_params,
                               images)
  assert features.shape == (16, run.method.features_dim)
  assert np.all(np.isfinite(np.asarray(features)))
