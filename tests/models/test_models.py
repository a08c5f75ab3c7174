"""Tests for jssl.models: shapes, parameter counts, dtypes, BatchNorm state and the decay mask.

Large models are only traced (``jax.eval_shape``); convolutions run at 8x8-32x32 with batch <= 8
so the file stays fast on a 2-core CPU.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import ml_collections
import optax
import pytest

from jssl import models
from jssl.models import MLPHead, create_encoder, encoder_features_dim, weight_decay_mask


def num_params(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def abstract_variables(module, shape):
  """Shapes and dtypes of ``module.init`` on ``[*shape]`` inputs, without running anything."""
  return jax.eval_shape(
      lambda: module.init(jax.random.key(0), jnp.zeros(shape, jnp.float32), train=False))


def leaves_by_path(tree):
  return {
      '/'.join(str(k.key) for k in path): leaf
      for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
  }


def images(shape, seed=0):
  return jax.random.uniform(jax.random.key(seed), shape, jnp.float32)


@pytest.fixture(scope='module')
def resnet18_params():
  return abstract_variables(create_encoder('resnet18', stem='imagenet'), (1, 224, 224, 3))['params']


@pytest.fixture(scope='module')
def resnet18_variables():
  """Real ResNet-18 (cifar stem, 3 channels) variables; params do not depend on the image size."""
  model = create_encoder('resnet18', stem='cifar')
  return jax.jit(lambda: model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), train=False))()


# --- Parameter counts (torchvision without the final fc). ---


@pytest.mark.parametrize('name, expected', [
    ('resnet18', 11_176_512),  # torchvision 11,689,512 - fc 513,000.
    ('resnet34', 21_284_672),  # torchvision 21,797,672 - fc 513,000.
    ('resnet50', 23_508_032),  # torchvision 25,557,032 - fc 2,049,000.
])
def test_resnet_param_counts_match_torchvision(name, expected):
  variables = abstract_variables(create_encoder(name, stem='imagenet'), (1, 224, 224, 3))
  assert num_params(variables['params']) == expected
  # Running statistics are a separate collection: one mean and one var per BN channel.
  bn_params = sum(
      int(np.prod(leaf.shape)) for path, leaf in leaves_by_path(variables['params']).items()
      if 'bn' in path)
  assert num_params(variables['batch_stats']) == bn_params
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(variables))


def test_resnet50_one_channel_stem_and_width_multiplier():
  one_channel = abstract_variables(create_encoder('resnet50', stem='imagenet'), (1, 64, 64, 1))
  assert num_params(one_channel['params']) == 23_508_032 - 7 * 7 * 2 * 64
  cifar = abstract_variables(create_encoder('resnet50', stem='cifar'), (1, 32, 32, 3))
  assert num_params(cifar['params']) == 23_508_032 - (7 * 7 - 3 * 3) * 3 * 64
  wide = create_encoder('resnet50', width_multiplier=2)
  assert wide.features_dim == 4096
  stem_kernel = abstract_variables(wide, (1, 32, 32, 3))['params']['conv_stem']['kernel']
  assert stem_kernel.shape == (3, 3, 3, 128)


def test_small_cnn_default_layout_and_param_count():
  variables = create_encoder('small_cnn').init(
      jax.random.key(0), jnp.zeros((1, 16, 16, 1)), train=False)
  shapes = {k: v.shape for k, v in leaves_by_path(variables['params']).items()}
  assert shapes == {
      'conv_0/kernel': (3, 3, 1, 32), 'bn_0/scale': (32,), 'bn_0/bias': (32,),
      'conv_1/kernel': (3, 3, 32, 64), 'bn_1/scale': (64,), 'bn_1/bias': (64,),
      'conv_2/kernel': (3, 3, 64, 128), 'bn_2/scale': (128,), 'bn_2/bias': (128,),
  }
  assert num_params(variables['params']) == 92_896


# --- Output shapes. ---


@pytest.mark.parametrize('name, features', [('resnet18', 512), ('resnet34', 512),
                                            ('resnet50', 2048)])
@pytest.mark.parametrize('stem', ['cifar', 'imagenet'])
@pytest.mark.parametrize('channels', [1, 3])
def test_resnet_output_shapes_traced(name, features, stem, channels):
  model = create_encoder(name, stem=stem)
  assert model.features_dim == features == encoder_features_dim(name)
  x = jax.ShapeDtypeStruct((2, 32, 32, channels), jnp.float32)
  variables = abstract_variables(model, (2, 32, 32, channels))
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
  assert out.shape == (2, features) and out.dtype == jnp.float32
  out, updates = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats']), variables, x)
  assert out.shape == (2, features)
  assert jax.tree_util.tree_structure(updates['batch_stats']) == jax.tree_util.tree_structure(
      variables['batch_stats'])


@pytest.mark.parametrize('stem, channels', [('cifar', 3), ('imagenet', 1)])
def test_resnet18_forward(resnet18_variables, stem, channels):
  model = create_encoder('resnet18', stem=stem)
  variables = resnet18_variables
  if stem == 'imagenet':  # Only the stem kernel differs between stems and channel counts.
    params = dict(variables['params'])
    params['conv_stem'] = {'kernel': jax.random.normal(jax.random.key(1), (7, 7, channels, 64))}
    variables = {'params': params, 'batch_stats': variables['batch_stats']}
  x = images((2, 32, 32, channels))
  out = model.apply(variables, x, train=False)
  assert out.shape == (2, 512) and out.dtype == jnp.float32
  assert np.all(np.isfinite(out)) and np.all(out >= 0)  # Average of ReLU outputs.
  assert np.std(np.asarray(out)) > 0


@pytest.mark.parametrize('size, channels, widths', [
    (8, 1, None),
    (16, 3, None),
    (28, 1, None),
    (8, 3, (8, 16, 24, 40)),
    (5, 1, (8,)),
])
def test_small_cnn_output_shapes(size, channels, widths):
  model = create_encoder('small_cnn', widths=widths)
  expected = 128 if widths is None else widths[-1]
  assert model.features_dim == expected == encoder_features_dim('small_cnn', widths=widths)
  x = images((2, size, size, channels))
  variables = model.init(jax.random.key(0), x, train=False)
  out = model.apply(variables, x, train=False)
  assert out.shape == (2, expected) and out.dtype == jnp.float32
  assert np.all(np.isfinite(out))


def test_small_cnn_width_multiplier():
  model = create_encoder('small_cnn', widths=(4, 8), width_multiplier=3)
  assert model.widths == (12, 24) and model.features_dim == 24


# --- Initialisation. ---


@pytest.mark.parametrize('block_cls, last_bn', [(models.BasicBlock, 'bn2'),
                                                (models.Bottleneck, 'bn3')])
@pytest.mark.parametrize('zero_init_residual', [True, False])
def test_resnet_zero_init_residual(block_cls, last_bn, zero_init_residual):
  model = models.ResNet(
      stage_sizes=(2, 1), block_cls=block_cls, zero_init_residual=zero_init_residual)
  assert model.features_dim == 128 * block_cls.expansion
  params = model.init(jax.random.key(0), jnp.zeros((1, 4, 4, 3)), train=False)['params']
  blocks = [k for k in params if k.startswith('stage')]
  assert blocks == ['stage1_block1', 'stage1_block2', 'stage2_block1']
  for block in blocks:
    expected = 0.0 if zero_init_residual else 1.0
    np.testing.assert_array_equal(params[block][last_bn]['scale'], expected)
    np.testing.assert_array_equal(params[block]['bn1']['scale'], 1.0)
    if 'downsample_bn' in params[block]:
      np.testing.assert_array_equal(params[block]['downsample_bn']['scale'], 1.0)


def test_resnet18_init(resnet18_variables):
  params = resnet18_variables['params']
  for block in ('stage1_block1', 'stage4_block2'):
    np.testing.assert_array_equal(params[block]['bn2']['scale'], 0.0)
  # He-normal with fan_out, as torchvision: std = sqrt(2 / (3 * 3 * out_channels)).
  kernel = params['stage4_block2']['conv2']['kernel']
  assert kernel.shape == (3, 3, 512, 512)
  np.testing.assert_allclose(np.std(kernel), np.sqrt(2 / (9 * 512)), rtol=0.02)
  np.testing.assert_allclose(np.mean(kernel), 0.0, atol=1e-3)


def test_resnet50_bottleneck_layout():
  params = abstract_variables(models.ResNet50(stem='imagenet'), (1, 64, 64, 3))['params']
  block = params['stage2_block1']
  # torchvision v1.5: the stride is on the 3x3 conv; the block widens to 4x.
  assert block['conv1']['kernel'].shape == (1, 1, 256, 128)
  assert block['conv2']['kernel'].shape == (3, 3, 128, 128)
  assert block['conv3']['kernel'].shape == (1, 1, 128, 512)
  assert block['downsample_conv']['kernel'].shape == (1, 1, 256, 512)
  assert 'downsample_conv' not in params['stage2_block2']

  def strides_of(module_path):
    strides = {}

    def interceptor(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)
      if isinstance(context.module, nn.Conv) and context.method_name == '__call__':
        strides[context.module.path] = (args[0].shape[1], out.shape[1])
      return out

    with nn.intercept_methods(interceptor):
      abstract_variables(models.ResNet50(stem='imagenet'), (1, 64, 64, 3))
    return strides[module_path]

  # 64x64 -> stem 32 -> max-pool 16 -> stage2 halves on conv2, not conv1.
  assert strides_of(('stage2_block1', 'conv1')) == (16, 16)
  assert strides_of(('stage2_block1', 'conv2')) == (16, 8)


# --- Mixed precision. ---


def assert_bfloat16_close_to_float32(name, variables, x):
  model32 = create_encoder(name, dtype='float32')
  model16 = create_encoder(name, dtype='bfloat16')
  for train in (False, True):
    out32, _ = model32.apply(variables, x, train=train, mutable=['batch_stats'])
    out16, stats16 = model16.apply(variables, x, train=train, mutable=['batch_stats'])
    assert out16.dtype == jnp.float32
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(stats16))
    scale = np.max(np.abs(out32))
    assert scale > 0
    np.testing.assert_allclose(out16, out32, atol=0.05 * scale, rtol=0.05)
    assert not np.array_equal(out16, out32)  # bf16 really is used.


def test_bfloat16_small_cnn():
  model = create_encoder('small_cnn', dtype='bfloat16')
  x = images((8, 16, 16, 3))
  variables = model.init(jax.random.key(0), x, train=False)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(variables))
  assert_bfloat16_close_to_float32('small_cnn', variables, x)


def test_bfloat16_resnet18(resnet18_variables):
  variables = abstract_variables(create_encoder('resnet18', dtype='bfloat16'), (1, 8, 8, 3))
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(variables))
  assert_bfloat16_close_to_float32('resnet18', resnet18_variables, images((2, 32, 32, 3)))


def test_mlp_head_bfloat16():
  head = MLPHead((32,), 16, last_bn=True, dtype=jnp.bfloat16)
  x = images((8, 24))
  variables = head.init(jax.random.key(0), x, train=False)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(variables))
  out16, _ = head.apply(variables, x, train=True, mutable=['batch_stats'])
  out32, _ = MLPHead((32,), 16, last_bn=True).apply(
      variables, x, train=True, mutable=['batch_stats'])
  assert out16.dtype == jnp.float32
  np.testing.assert_allclose(out16, out32, atol=0.05 * np.max(np.abs(out32)))


# --- BatchNorm state. ---


def test_batch_norm_train_updates_running_stats_and_eval_uses_them():
  model = create_encoder('small_cnn', widths=(8, 16))
  x = images((6, 8, 8, 1))
  variables = model.init(jax.random.key(0), x, train=False)
  stats = variables['batch_stats']
  np.testing.assert_array_equal(stats['bn_0']['mean'], 0.0)
  np.testing.assert_array_equal(stats['bn_0']['var'], 1.0)

  _, updates = model.apply(variables, x, train=True, mutable=['batch_stats'])
  new_stats = updates['batch_stats']
  # The running mean moves 10% (momentum 0.9) towards the batch mean of conv_0's output.
  conv_out = nn.Conv(8, (3, 3), padding=((1, 1), (1, 1)), use_bias=False).apply(
      {'params': variables['params']['conv_0']}, (x - 0.5) / 0.25)
  np.testing.assert_allclose(
      new_stats['bn_0']['mean'], 0.1 * np.mean(conv_out, axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(
      new_stats['bn_0']['var'], 0.9 + 0.1 * np.var(conv_out, axis=(0, 1, 2)), rtol=1e-4)
  for name in ('bn_0', 'bn_1'):
    assert not np.allclose(new_stats[name]['mean'], stats[name]['mean'])

  # Eval mode needs no mutable collection, so it cannot update the stats; outputs are per-example.
  eval_out = model.apply(variables, x, train=False)
  np.testing.assert_allclose(model.apply(variables, x[:2], train=False), eval_out[:2], rtol=1e-5,
                             atol=1e-6)
  train_out, _ = model.apply(variables, x, train=True, mutable=['batch_stats'])
  train_out_small, _ = model.apply(variables, x[:2], train=True, mutable=['batch_stats'])
  assert not np.allclose(train_out_small, train_out[:2], atol=1e-4)

  # Eval uses the running averages; train ignores them.
  updated = {'params': variables['params'], 'batch_stats': new_stats}
  assert not np.allclose(model.apply(updated, x, train=False), eval_out, atol=1e-4)
  train_out_updated, _ = model.apply(updated, x, train=True, mutable=['batch_stats'])
  np.testing.assert_allclose(train_out_updated, train_out, rtol=1e-5, atol=1e-6)


def test_mlp_head_train_updates_batch_stats():
  head = MLPHead((16,), 8)
  x = images((4, 12))
  variables = head.init(jax.random.key(0), x, train=False)
  _, updates = head.apply(variables, x, train=True, mutable=['batch_stats'])
  assert not np.allclose(updates['batch_stats']['bn_0']['mean'],
                         variables['batch_stats']['bn_0']['mean'])
  with pytest.raises(Exception):  # Training must declare batch_stats mutable.
    head.apply(variables, x, train=True)
  assert head.apply(variables, x, train=False).shape == (4, 8)


# --- Heads. ---


def test_mlp_head_layouts():
  x = jax.ShapeDtypeStruct((3, 2048), jnp.float32)
  byol = MLPHead((4096,), 256)
  variables = jax.eval_shape(lambda x: byol.init(jax.random.key(0), x, train=False), x)
  shapes = {k: v.shape for k, v in leaves_by_path(variables['params']).items()}
  assert shapes == {
      'dense_0/kernel': (2048, 4096), 'bn_0/scale': (4096,), 'bn_0/bias': (4096,),
      'dense_out/kernel': (4096, 256), 'dense_out/bias': (256,),
  }
  out = jax.eval_shape(lambda v, x: byol.apply(v, x, train=False), variables, x)
  assert out.shape == (3, 256) and out.dtype == jnp.float32

  no_bn = MLPHead((8, 8), 4, use_bn=False, last_bn=True)
  params = no_bn.init(jax.random.key(0), jnp.ones((2, 5)), train=False)['params']
  assert set(leaves_by_path(params)) == {
      'dense_0/kernel', 'dense_0/bias', 'dense_1/kernel', 'dense_1/bias', 'dense_out/kernel',
      'bn_out/scale', 'bn_out/bias'
  }
  linear = MLPHead((), 4)
  assert linear.apply(linear.init(jax.random.key(0), jnp.ones((2, 5)), train=False),
                      jnp.ones((2, 5)), train=False).shape == (2, 4)


# --- Weight-decay mask. ---


def test_weight_decay_mask_resnet18(resnet18_params):
  mask = weight_decay_mask(resnet18_params)
  assert jax.tree_util.tree_structure(mask) == jax.tree_util.tree_structure(resnet18_params)
  flat_params = leaves_by_path(resnet18_params)
  flat_mask = leaves_by_path(mask)
  decayed = [path for path, m in flat_mask.items() if m is True]
  assert all(m in (True, False) for m in flat_mask.values())
  # 1 stem conv + 8 blocks x 2 convs + 3 projection shortcuts, and nothing else.
  assert len(decayed) == 20
  assert all(path.endswith('kernel') and len(flat_params[path].shape) == 4 for path in decayed)
  for path, m in flat_mask.items():
    if not m:
      assert path.rsplit('/', 2)[-2].startswith(('bn', 'downsample_bn'))
      assert path.endswith(('/scale', '/bias'))
  # Everything but the BN affine params (2 x 4,800 channels) is decayed.
  assert sum(int(np.prod(flat_params[p].shape)) for p in decayed) == 11_176_512 - 9_600


def test_weight_decay_mask_mlp_head_with_optax():
  head = MLPHead((8,), 4, last_bn=False)
  params = head.init(jax.random.key(0), jnp.ones((2, 5)), train=False)['params']
  params = jax.tree_util.tree_map(lambda p: p + 1.0, params)  # No zeros, so 0 means "masked".
  mask = weight_decay_mask(params)
  assert leaves_by_path(mask) == {
      'dense_0/kernel': True, 'bn_0/scale': False, 'bn_0/bias': False,
      'dense_out/kernel': True, 'dense_out/bias': False,
  }
  decay = optax.add_decayed_weights(1.0, mask=mask)
  zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
  updates, _ = decay.update(zeros, decay.init(params), params)
  for path, update in leaves_by_path(updates).items():
    expected = leaves_by_path(params)[path] if leaves_by_path(mask)[path] else 0.0
    np.testing.assert_array_equal(update, expected)


# --- Errors. ---


def test_unknown_names_raise_helpful_errors():
  with pytest.raises(ValueError, match=r"'resnet101'.*'resnet18'.*'resnet50'.*'small_cnn'"):
    create_encoder('resnet101')
  with pytest.raises(ValueError, match=r"'tiny'.*'cifar', 'imagenet'"):
    create_encoder('resnet18', stem='tiny')
  with pytest.raises(ValueError, match=r"'float16'.*'bfloat16', 'float32'"):
    create_encoder('small_cnn', dtype='float16')
  with pytest.raises(ValueError, match='only applies to small_cnn'):
    create_encoder('resnet18', widths=(8, 16))
  with pytest.raises(ValueError, match='positive int'):
    create_encoder('resnet18', width_multiplier=0)
  with pytest.raises(ValueError, match='positive ints'):
    create_encoder('small_cnn', widths=())
  with pytest.raises(ValueError, match="valid stems are \\['cifar', 'imagenet'\\]"):
    abstract_variables(models.ResNet18(stem='tiny'), (1, 8, 8, 3))
  with pytest.raises(ValueError, match='valid encoders'):
    encoder_features_dim('vit')


def test_per_channel_normalisation():
  model = create_encoder('small_cnn', widths=(4,), mean=(0.1, 0.2, 0.3), std=(1.0, 2.0, 4.0))
  x = images((2, 4, 4, 3))
  variables = model.init(jax.random.key(0), x, train=False)
  reference = create_encoder('small_cnn', widths=(4,), mean=0.0, std=1.0)
  shifted = (x - jnp.array([0.1, 0.2, 0.3])) / jnp.array([1.0, 2.0, 4.0])
  np.testing.assert_allclose(
      model.apply(variables, x, train=False), reference.apply(variables, shifted, train=False),
      rtol=1e-5, atol=1e-6)


def test_small_cnn_matmul_convs_same_parameters_and_outputs():
  from jssl.models.small_cnn import SmallCNN
  x = jax.random.uniform(jax.random.key(0), (4, 16, 16, 1))
  plain, fast = SmallCNN(widths=(8, 16, 32)), SmallCNN(widths=(8, 16, 32), matmul_convs=True)
  variables = plain.init(jax.random.key(1), x, train=False)
  assert (jax.tree_util.tree_structure(variables) ==
          jax.tree_util.tree_structure(fast.init(jax.random.key(1), x, train=False)))
  np.testing.assert_allclose(fast.apply(variables, x, train=False),
                             plain.apply(variables, x, train=False), rtol=1e-5, atol=1e-5)
  encoder = models.encoder_from_config(ml_collections.ConfigDict(
      {'encoder': 'small_cnn', 'stem': 'cifar', 'width_multiplier': 1, 'widths': (8,),
       'dtype': 'float32', 'small_cnn_matmul_convs': True}))
  assert encoder.matmul_convs
