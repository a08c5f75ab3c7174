"""`python -m jssl.bench` end to end on a tiny SimCLR config, in processes of their own (1 CPU
device), and its `--data_only` measurement."""

import json
import math
import os

import pytest
from cli_fork import launcher

from jssl import bench

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, 'experiments', 'configs', 'simclr.py')
TINY = ['--config.batch_size=16', '--config.model.widths=(4,8)',
        '--config.model.projection_hidden_dim=16', '--config.model.projection_dim=8',
        '--steps=3', '--warmup=1', '--batches=2', '--peak_matmul_size=256']


def run_bench(*extra):
  """`python -m jssl.bench` on one CPU device, forked by tests/cli_fork.py."""
  env = dict(os.environ)
  env['XLA_FLAGS'] = '--xla_force_host_platform_device_count=1'
  env['JAX_PLATFORMS'] = 'cpu'
  env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
  return launcher().run([f'--config={CONFIG}', *extra], env=env, cwd=REPO,
                        module='jssl.bench', timeout=300)


def test_bench_writes_consistent_positive_results(tmp_path):
  out = str(tmp_path / 'bench.json')
  result = run_bench(*TINY, f'--out={out}')
  assert result.returncode == 0, result.stderr[-4000:]
  assert 'images/s' in result.stdout and 'MFU' in result.stdout
  with open(out) as f:
    r = json.load(f)
  positive = ['lower_s', 'compile_s', 'step_time_s', 'step_time_min_s', 'step_time_max_s',
              'step_cpu_time_s', 'images_per_s', 'views_per_s', 'flops_per_step',
              'achieved_flops_per_s', 'peak_flops_per_s', 'mfu']
  for key in positive:
    assert isinstance(r[key], float) and math.isfinite(r[key]) and r[key] > 0, (key, r[key])
  memory = r['memory']
  for key in ('argument_bytes', 'output_bytes', 'temp_bytes', 'process_peak_rss_bytes'):
    assert isinstance(memory[key], int) and memory[key] > 0, (key, memory[key])
  assert memory['device_peak_bytes_in_use'] is None  # CPU has no device memory stats
  assert r['platform'] == 'cpu' and r['device_count'] == 1
  assert r['batch_size'] == 16 and r['views'] == 2 and r['widths'] == [4, 8]
  assert r['steps'] == 3 and len(r['step_times_s']) == 3
  assert r['step_time_min_s'] <= r['step_time_s'] <= r['step_time_max_s']
  assert r['images_per_s'] == pytest.approx(r['batch_size'] / r['step_time_s'], rel=1e-9)
  assert r['views_per_s'] == pytest.approx(2 * r['images_per_s'], rel=1e-9)
  assert r['achieved_flops_per_s'] == pytest.approx(r['flops_per_step'] / r['step_time_s'],
                                                    rel=1e-9)
  assert r['mfu'] == pytest.approx(r['achieved_flops_per_s'] / r['peak_flops_per_s'], rel=1e-9)
  assert 0 < r['mfu'] < 1.5  # the peak is measured, so a little over 1 would still be plausible
  peak = r['peak_matmul']
  assert peak['size'] == 256 and peak['dtype'] == 'float32'
  assert r['peak_flops_per_s'] == pytest.approx(2 * 256**3 / peak['time_s'], rel=1e-9)
  assert r['config'] == CONFIG and r['overrides']['batch_size'] == 16
  assert math.isfinite(r['final_loss']) and r['nonfinite_step'] == -1


@pytest.mark.parametrize('extra, expected', [
    (['--config.bacth_size=64'], 'unknown config field'),
    (['--steps=0'], '--steps'),
    (['--stepz=3'], 'stepz'),
    (['--config.method=nope'], "config.method='nope' is not a known method"),
])
def test_bad_flag_is_a_clear_error(extra, expected):
  result = run_bench(*extra)
  assert result.returncode == 2, result.stderr[-3000:]
  assert 'jssl.bench: error:' in result.stderr and expected in result.stderr
  assert 'Traceback' not in result.stderr


class _Compiled:

  def __init__(self, analysis):
    self._analysis = analysis

  def cost_analysis(self):
    return self._analysis


def test_flops_of_reads_a_dict_or_a_list_of_dicts():
  assert bench.flops_of(_Compiled({'flops': 6.0, 'bytes accessed': 1.0})) == 6.0
  assert bench.flops_of(_Compiled([{'flops': 2.0}, {'flops': 3.0}])) == 5.0
  with pytest.raises(ValueError, match='no FLOP count'):
    bench.flops_of(_Compiled({}))


# The speed changes benchmarked with jssl.bench must not change the model's mathematics.
# (This belongs in tests/models/test_models.py; it sits here with the benchmark for now.)
@pytest.mark.parametrize('shape', [(3, 28, 28, 16), (2, 7, 7, 5), (2, 6, 9, 3)])
def test_max_pool_2x2_matches_nn_max_pool_values_and_gradients(shape):
  import flax.linen as nn
  import jax
  import numpy as np
  from jssl.models.small_cnn import max_pool_2x2

  rng = np.random.default_rng(0)
  # ReLU of values rounded to halves: many ties, at zero and above it.
  x = np.maximum(np.round(rng.standard_normal(shape) * 2) / 2, 0).astype(np.float32)
  x[0, :4, :4, 0] = 1.5  # whole windows of equal positive values
  reference = lambda y: nn.max_pool(y, (2, 2), strides=(2, 2))
  out, vjp = jax.vjp(max_pool_2x2, x)
  expected, expected_vjp = jax.vjp(reference, x)
  cotangent = rng.standard_normal(out.shape).astype(np.float32)
  np.testing.assert_array_equal(out, expected)
  np.testing.assert_array_equal(vjp(cotangent)[0], expected_vjp(cotangent)[0])


@pytest.mark.parametrize('shape, features', [((3, 28, 28, 1), 16), ((2, 3, 3, 64), 32),
                                             ((2, 5, 4, 3), 8)])
def test_conv3x3_as_matmul_is_nn_conv(shape, features):
  import flax.linen as nn
  import jax
  import numpy as np
  from jssl.models.resnet import conv_kernel_init
  from jssl.models.small_cnn import Conv3x3AsMatmul

  x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
  conv = nn.Conv(features, (3, 3), padding=((1, 1), (1, 1)), use_bias=False,
                 kernel_init=conv_kernel_init)
  params = conv.init(jax.random.key(0), x)
  mine = Conv3x3AsMatmul(features).init(jax.random.key(0), x)
  # The same parameter (name, shape and initial values), so checkpoints are interchangeable.
  np.testing.assert_array_equal(mine['params']['kernel'], params['params']['kernel'])
  cotangent = np.random.default_rng(2).standard_normal(shape[:-1] + (features,)).astype(
      np.float32)
  outs, grads = [], []
  for module in (conv, Conv3x3AsMatmul(features)):
    out, vjp = jax.vjp(lambda p, y, m=module: m.apply(p, y), params, x)
    outs.append(out)
    grads.append(vjp(cotangent))
  np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-5)
  for reference, got in zip(jax.tree_util.tree_leaves(grads[0]),
                            jax.tree_util.tree_leaves(grads[1])):
    np.testing.assert_allclose(reference, got, rtol=1e-4, atol=1e-4)


def test_data_only_times_the_input_pipeline_of_a_jpeg_dataset(tmp_path):
  """`--data_only`'s measurement on the benchmark's own JPEG dataset (16 images, built here
  with experiments/jpeg_dataset.py), read in this process."""
  import importlib.util
  from jssl.config import load_config
  spec = importlib.util.spec_from_file_location(
      'jpeg_dataset', os.path.join(REPO, 'experiments', 'jpeg_dataset.py'))
  jpeg_dataset = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(jpeg_dataset)
  data_dir = str(tmp_path / 'tfds')
  jpeg_dataset.build(data_dir, 16, num_test=8)
  config = load_config(f'{CONFIG}:cifar10')
  config.dataset.name = 'tfds:jssl_jpeg224'
  config.dataset.data_dir = data_dir
  config.dataset.image_size = 224
  config.batch_size = 4
  r = bench.data_benchmark(config, workers=(0,), batches=3, warmup=1, gpus=8,
                           images_per_s_per_gpu=3000.0)
  assert r['train_examples'] == 14 and r['batch']['image'] == [[4, 224, 224, 3], 'uint8']
  (row,) = r['rows']
  assert row['workers'] == 0 and row['images_per_s'] > 0 and row['cpu_s'] > 0
  assert row['images_per_s'] == pytest.approx(12 / row['wall_s'])
  assert row['cores_to_feed'] == pytest.approx(8 * 3000 * row['cpu_ms_per_image'] / 1e3)
  assert 'workers' in bench.data_summary(r)
