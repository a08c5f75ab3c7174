"""Tests for jssl.models.generative: shapes for every size, init, gradients, errors, 8 devices.

Shapes are traced (``jax.eval_shape``) for every size and channel count; real programs run at
8x8 and 16x16 with base widths of 4-8 so the file stays fast on a 2-core CPU.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jssl.models.generative import (START_SIZES, ConvDiscriminator, ConvEncoder, ConvGenerator,
                                    num_upsamplings)

SIZES = sorted(START_SIZES)
LATENT = 6


def leaves_by_path(tree):
  return {'/'.join(str(k.key) for k in path): leaf
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def traced(module, *shapes, **kwargs):
  """(variables, outputs) of ``module`` on inputs of ``shapes``, traced without running."""
  inputs = [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]
  variables = jax.eval_shape(lambda *x: module.init(jax.random.key(0), *x, **kwargs), *inputs)
  out = jax.eval_shape(lambda v, *x: module.apply(v, *x, **kwargs), variables, *inputs)
  return variables, out


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('channels', [1, 3])
def test_shapes_for_every_supported_size(size, channels):
  width = 4
  generator = ConvGenerator(size, channels, base_width=width)
  variables, images = traced(generator, (2, LATENT), train=False)
  assert images.shape == (2, size, size, channels) and images.dtype == jnp.float32
  params = leaves_by_path(variables['params'])
  ups = num_upsamplings(size)
  start = START_SIZES[size]
  assert size == start * 2**ups
  # Dense to the start grid with w 2^(ups-1) channels, halving each layer, then the image.
  assert params['project/kernel'].shape == (LATENT, start * start * width * 2**(ups - 1))
  assert params['deconv_out/kernel'].shape == (4, 4, width, channels)
  assert len([p for p in params if p.startswith('deconv_') and p.endswith('kernel')]) == ups
  assert 'deconv_out/bias' in params and not any(
      p.startswith(('project/bias', 'deconv_0/bias')) for p in params)
  assert set(leaves_by_path(variables['batch_stats'])) == {
      f'{bn}/{stat}' for bn in ['bn_project'] + [f'bn_{i}' for i in range(ups - 1)]
      for stat in ('mean', 'var')}

  discriminator = ConvDiscriminator(base_width=width)
  variables, (logits, features) = traced(discriminator, (2, size, size, channels), train=False)
  assert logits.shape == (2,) and logits.dtype == features.dtype == jnp.float32
  # The generator's layers in reverse: the last map is the start grid, w 2^(ups-1) channels.
  assert features.shape == (2, start * start * width * 2**(ups - 1))
  assert discriminator.features_dim_for(size) == features.shape[1]
  params = leaves_by_path(variables['params'])
  assert 'conv_0/bias' in params and 'bn_0/scale' not in params  # No norm on layer 1.
  assert len([p for p in params if p.startswith('conv_') and p.endswith('kernel')]) == ups

  encoder = ConvEncoder(LATENT, base_width=width)
  assert encoder.features_dim == LATENT
  variables, (mean, log_var) = traced(encoder, (2, size, size, channels))
  assert mean.shape == log_var.shape == (2, LATENT) and mean.dtype == jnp.float32
  assert 'batch_stats' not in variables


def test_discriminator_features_dim_defaults_and_rectangles():
  discriminator = ConvDiscriminator()  # base_width 64.
  assert discriminator.features_dim_for(32) == 4 * 4 * 256
  assert discriminator.features_dim_for(28) == 7 * 7 * 128
  _, (_, features) = traced(ConvDiscriminator(base_width=4), (2, 12, 20, 1), train=False)
  assert features.shape[1] == ConvDiscriminator(base_width=4).features_dim_for(12, 20)


def test_discriminator_norm_layouts():
  def params_of(norm):
    variables, _ = traced(ConvDiscriminator(base_width=4, norm=norm), (2, 16, 16, 3),
                          train=False)
    return variables, set(leaves_by_path(variables['params']))

  variables, params = params_of('layer')
  assert 'batch_stats' not in variables
  assert {'ln_1/scale', 'ln_1/bias'} <= params and 'conv_1/bias' not in params
  assert variables['params']['ln_1']['scale'].shape == (8,)  # Per channel.
  variables, params = params_of('none')
  assert 'batch_stats' not in variables and 'conv_1/bias' in params
  _, params = params_of('batch')
  assert {'bn_1/scale', 'bn_1/bias'} <= params and 'conv_1/bias' not in params


def test_unsupported_sizes_and_options_raise():
  z = (2, LATENT)
  with pytest.raises(ValueError, match=r'size 24.*\[8, 16, 28, 32\]'):
    traced(ConvGenerator(24, 1), z, train=False)
  with pytest.raises(ValueError, match=r"'relu'.*\['tanh', 'sigmoid', 'logits'\]"):
    traced(ConvGenerator(8, 1, output='relu'), z, train=False)
  with pytest.raises(ValueError, match='base_width must be a positive int'):
    traced(ConvGenerator(8, 1, base_width=0), z, train=False)
  with pytest.raises(ValueError, match=r"'group'.*\['batch', 'layer', 'none'\]"):
    traced(ConvDiscriminator(norm='group'), (2, 8, 8, 1), train=False)
  with pytest.raises(ValueError, match=r'\[batch, height, width, channels\]'):
    traced(ConvEncoder(LATENT), (8, 8, 1))


class Models:
  """A 16x16 RGB generator, discriminator and encoder (base width 4) and one jitted init."""

  def __init__(self):
    self.generator = ConvGenerator(16, 3, base_width=4)
    self.discriminator = ConvDiscriminator(base_width=4)
    self.encoder = ConvEncoder(LATENT, base_width=4)

    @jax.jit
    def init(key):
      g_key, d_key, e_key = jax.random.split(key, 3)
      images = jnp.zeros((1, 16, 16, 3))
      return (self.generator.init(g_key, jnp.zeros((1, LATENT)), train=False),
              self.discriminator.init(d_key, images, train=False),
              self.encoder.init(e_key, images))

    self.init = init


@pytest.fixture(scope='module')
def models():
  return Models()


def test_init_is_deterministic(models):
  a, b, c = models.init(jax.random.key(0)), models.init(jax.random.key(0)), models.init(
      jax.random.key(1))
  jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(c)):
    if x.ndim > 1:  # Every weight changes with the key.
      assert not np.array_equal(x, y)
  kernel = np.asarray(a[0]['params']['deconv_0']['kernel'])
  np.testing.assert_allclose(np.std(kernel), 0.02, rtol=0.1)  # DCGAN's N(0, 0.02).
  np.testing.assert_allclose(np.std(a[1]['params']['conv_1']['kernel']), 0.02, rtol=0.1)
  np.testing.assert_array_equal(a[0]['batch_stats']['bn_0']['var'], 1.0)


def test_outputs_in_range_and_gradients_finite(models):
  generator, discriminator, encoder = models.generator, models.discriminator, models.encoder
  z = jax.random.normal(jax.random.key(1), (4, LATENT))
  g_vars, d_vars, e_vars = models.init(jax.random.key(0))

  @jax.jit
  def losses_and_grads(g_params, d_params, e_params):
    def loss(g_params, d_params, e_params):
      images, _ = generator.apply({'params': g_params, 'batch_stats': g_vars['batch_stats']}, z,
                                  train=True, mutable=['batch_stats'])
      (logits, features), _ = discriminator.apply(
          {'params': d_params, 'batch_stats': d_vars['batch_stats']}, images, train=True,
          mutable=['batch_stats'])
      mean, log_var = encoder.apply({'params': e_params}, images)
      total = jnp.mean(jax.nn.softplus(-logits)) + jnp.mean(mean**2 + jnp.exp(log_var))
      return total, (images, features)
    return jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(
        g_params, d_params, e_params)

  (_, (images, features)), grads = losses_and_grads(g_vars['params'], d_vars['params'],
                                                    e_vars['params'])
  assert images.shape == (4, 16, 16, 3) and np.all(np.abs(images) <= 1)  # tanh.
  assert np.std(images) > 0 and features.shape == (4, 4 * 4 * 8)
  for tree in grads:
    leaves = leaves_by_path(tree)
    assert all(np.all(np.isfinite(g)) for g in leaves.values())
    assert all(np.any(g != 0) for g in leaves.values()), [k for k, g in leaves.items()
                                                        if not np.any(g)]

  # The other outputs, on the same parameters: sigmoid and tanh of the same logits.
  @jax.jit
  def three_outputs(g_vars):
    return [ConvGenerator(16, 3, base_width=4, output=output).apply(g_vars, z, train=False)
            for output in ('logits', 'sigmoid', 'tanh')]

  raw, sigmoid, tanh = three_outputs(g_vars)
  assert np.any(np.abs(raw) > 0) and np.all((sigmoid >= 0) & (sigmoid <= 1))
  np.testing.assert_allclose(sigmoid, jax.nn.sigmoid(raw), rtol=1e-6)
  np.testing.assert_allclose(tanh, np.tanh(raw), rtol=1e-5, atol=1e-6)


def test_encoder_and_layer_norm_critic_are_per_example():
  """No batch statistics: an example's outputs are the same in a batch of 6 and of 2."""
  x = jax.random.uniform(jax.random.key(3), (6, 8, 8, 1))
  encoder = ConvEncoder(LATENT, base_width=4)
  critic = ConvDiscriminator(base_width=4, norm='layer')

  @jax.jit
  def outputs(x):
    e_vars = encoder.init(jax.random.key(0), x)
    c_vars = critic.init(jax.random.key(1), x, train=True)
    return [(encoder.apply(e_vars, batch, train=True), critic.apply(c_vars, batch, train=True))
            for batch in (x, x[:2])]

  (encoded, scored), (encoded2, scored2) = outputs(x)
  for full, part in zip(jax.tree_util.tree_leaves((encoded, scored)),
                        jax.tree_util.tree_leaves((encoded2, scored2))):
    np.testing.assert_allclose(part, full[:2], rtol=1e-5, atol=1e-6)


def test_eight_devices_equal_one_with_global_batch_statistics(models):
  generator, discriminator = models.generator, models.discriminator
  g_vars, d_vars, _ = models.init(jax.random.key(0))
  z = jax.random.normal(jax.random.key(2), (16, LATENT))

  @jax.jit
  def forward(g_vars, d_vars, z):
    images, g_stats = generator.apply(g_vars, z, train=True, mutable=['batch_stats'])
    (logits, features), d_stats = discriminator.apply(d_vars, images, train=True,
                                                      mutable=['batch_stats'])
    return images, logits, features, g_stats, d_stats

  one = forward(g_vars, d_vars, z)
  mesh = Mesh(np.asarray(jax.devices()), ('data',))
  assert mesh.size == 8
  sharded_z = jax.device_put(z, NamedSharding(mesh, P('data')))
  eight = forward(g_vars, d_vars, sharded_z)
  assert len(eight[0].sharding.device_set) == 8
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
                         eight, one)
  # Per-device statistics (2 examples per device) would differ: the check can fail.
  local = forward(g_vars, d_vars, z[:2])
  assert not np.allclose(local[0], one[0][:2], atol=1e-3)
  assert not np.allclose(local[3]['batch_stats']['bn_0']['mean'],
                         one[3]['batch_stats']['bn_0']['mean'], atol=1e-5)
