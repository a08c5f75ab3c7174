"""Every experiment config variant, on tiny offline stand-ins for its data.

cifar10 and imagenet2012 are written as real TFDS datasets (ArrayRecord, the catalog's name
and version, built by a TFDS builder without TensorFlow); Fashion-MNIST as real IDX files.
Runs in-process on the 8 simulated devices of conftest.py.

Every variant, as written (its encoder, sizes, dtype, optimizer, augmentation, queues and
banks, at its image size), is built on its data and validated, and its train step, epoch
hook and feature function are traced with `jax.eval_shape` (`Run(abstract=True).trace()`):
every shape, dtype and tracing error of the config, for the cost of tracing. What is
compiled and run is one variant per (method, encoder kind), so no program is paid for twice:
every method's digits config trains on 1 and 8 devices, and across a checkpoint restore, in
tests/methods/test_all_methods.py (shrunk to a tiny model), SimCLR's digits config through
the CLI in tests/test_main.py; here its cifar10 config trains its ResNet-18 for two steps (the one ResNet train step of the suite;
the ResNets' layouts, stems and bfloat16 compute are tested in tests/models).
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
from jssl.data import modality_of
from jssl.config import validate_config
import jax

from jssl.train.loop import Run
from jssl.train.loop import train_and_evaluate
from jssl.train.metrics import read_metrics
import stage_one

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
  _fake_tfds_builder('cifar10', (32, 32, 3), {'train': 600, 'test': 16})(
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
  for prefix, count in (('train', 5300), ('t10k', 16)):  # 5000 go to validation
    _write_idx(os.path.join(directory, f'{prefix}-images-idx3-ubyte'),
               rng.integers(0, 256, size=(count, 28, 28)))
    _write_idx(os.path.join(directory, f'{prefix}-labels-idx1-ubyte'), np.arange(count) % 10)
  return directory


def _cases():
  for path in CONFIGS:
    variants = _variants(_load_config_module(path))
    default = load_config(path).to_dict()
    if any(load_config(f'{path}:{v}').to_dict() == default for v in variants[1:]):
      variants = variants[1:]  # the default is one of the named variants: traced once, by name
    for variant in variants:
      yield pytest.param(path, variant, id=f'{os.path.basename(path)}:{variant or "default"}')


def _config(path, variant, tfds_dir, fashion_dir):
  config = load_config(f'{path}:{variant}' if variant else path)
  if config.dataset.name == 'fashion_mnist':
    config.dataset.data_dir = fashion_dir
  elif config.dataset.name not in ('digits', 'emoji') and modality_of(config.dataset.name) == 'image':
    config.dataset.data_dir = tfds_dir  # text and graph datasets read the installed Debian data
  return config


def _same_shapes(a, b):
  return (jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b) and
          all(x.shape == y.shape and x.dtype == y.dtype
              for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))))


@pytest.mark.parametrize('path,variant', list(_cases()))
def test_builds_validates_and_traces(path, variant, tfds_dir, fashion_dir, tmp_path):
  config = _config(path, variant, tfds_dir, fashion_dir)
  if config.dataset.name == 'imagenet2012':
    # The stand-in has 200 training images; the batch of 4096 is validated first (it sizes no
    # state), then the programs are traced at a batch the stand-in holds.
    validate_config(config, device_count=jax.device_count())
    config.batch_size = 192
  if config.method == 'vqvae_prior':  # the prior reads a stage-one workdir: one at step 0
    stage = _config(os.path.join(REPO, 'experiments', 'configs', 'vqvae.py'), variant,
                    tfds_dir, fashion_dir)
    config.vqvae_prior.stage_one_workdir = stage_one.write_stage_one(
        stage, str(tmp_path / 'stage_one'))
  if config.method == 'clusterfit':  # clusters the features of a trained run: one at step 0
    source = _config(os.path.join(REPO, 'experiments', 'configs', 'rotation.py'), variant,
                     tfds_dir, fashion_dir)
    source.model.encoder, source.model.widths = 'small_cnn', (4, 8)  # any source will do
    config.clusterfit.source_workdir = stage_one.write_stage_one(source, str(tmp_path / 'source'))
    config.clusterfit.num_clusters = 4
  run = Run(config, str(tmp_path), abstract=True)
  try:
    traced = run.trace()
  finally:
    run.iterator.close()
  assert _same_shapes(traced['state'], run.state)  # the step maps the state onto itself
  assert traced['metrics']['loss'].shape == () and traced['metrics']['loss'].dtype == np.float32
  features, logits = traced['features']
  assert features.shape == (config.eval.batch_size, run.method.features_dim)
  assert logits.shape == (config.eval.batch_size, run.eval_dataset.num_classes)
  if run.epoch_start is not None:
    assert _same_shapes(traced['epoch_start'],
                        (run.state.params, run.state.opt_state, run.state.extra))


# The program of SimCLR's configs that is compiled and run here: cifar10's ResNet-18 step
# (TFDS ArrayRecord data), the one ResNet train step of the suite. The small-CNN configs train
# through the CLI (tests/test_main.py: digits, end to end) and in test_all_methods.py;
# Fashion-MNIST's IDX files are read in tests/data/test_fashion_mnist.py, and its variants are
# traced above on them.
@pytest.mark.parametrize('variant', ['cifar10'])
def test_simclr_trains(variant, tfds_dir, fashion_dir, tmp_path):
  path = os.path.join(REPO, 'experiments', 'configs', 'simclr.py')
  config = _config(path, variant, tfds_dir, fashion_dir)
  config.num_steps = 2
  config.batch_size = 16
  if config.model.encoder != 'small_cnn':
    _two_steps_and_encode(config, str(tmp_path))
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


def _two_steps_and_encode(config, workdir):
  # One device: this checks that the config's ResNet trains and encodes (sharding is checked
  # on the small encoders of tests/methods/test_all_methods.py); the one-device program
  # compiles and runs in about half the time of the 8-device one.
  run = Run(config, workdir, devices=jax.devices()[:1])
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
                               {'image': images}, run.constants)
  assert features.shape == (16, run.method.features_dim)
  assert np.all(np.isfinite(np.asarray(features)))
