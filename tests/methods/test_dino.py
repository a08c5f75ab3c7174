"""DINO: the head, the teacher EMA, the centre update, the loss against the loss function on
separately computed student and teacher outputs (teacher on the global views only), the
teacher-temperature warm-up, stop-gradients, last-layer freezing, config errors and a short
digits run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl import losses
from jssl import models
from jssl.config import ConfigError
from jssl.methods import TrainInfo
from jssl.methods import common
from jssl.methods import dino
from tiny import tiny_config, initialise

# 64 examples / batch 8: 8 steps per epoch.
INFO = TrainInfo(num_examples=64, num_classes=10, image_channels=1, num_steps=40)


def _config(**overrides):
  config = tiny_config('dino', image_size=8, **{
      'head_hidden_dim': 16, 'bottleneck_dim': 8, 'out_dim': 12,
      'momentum_schedule': 'constant', 'warmup_teacher_temp': 0.04, 'teacher_temp': 0.07,
      'warmup_teacher_temp_epochs': 2.0,  # 16 steps
      **overrides})
  config.augment.local_crop_size = 4
  return config


def _setup(config):
  method = dino.create(config, INFO)
  return (method, *initialise(method))


def _network(config):
  c = config.dino
  return dino.MultiCropNetwork(
      encoder=models.encoder_from_config(config.model),
      head=dino.DINOHead(hidden_dim=c.head_hidden_dim, bottleneck_dim=c.bottleneck_dim,
                         out_dim=c.out_dim, num_layers=c.head_layers, use_bn=c.head_bn))


@jax.jit
def _perturbed(tree, rng, scale=0.05):
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  keys = jax.random.split(rng, len(leaves))
  return treedef.unflatten([x + scale * jax.random.normal(k, x.shape)
                            for x, k in zip(leaves, keys)])


@pytest.mark.parametrize('use_bn', [False, True])
def test_head_bottleneck_is_unit_and_last_layer_weight_normalised(use_bn):
  head = dino.DINOHead(hidden_dim=16, bottleneck_dim=8, out_dim=12, use_bn=use_bn)
  h = jnp.asarray(np.random.default_rng(0).normal(size=(5, 6)), jnp.float32)
  variables = jax.jit(lambda h: head.init(jax.random.key(1), h, train=True))(h)
  params = variables['params']
  assert set(params) == ({'dense_0', 'dense_1', 'dense_2', 'last_layer'}
                         | ({'bn_0', 'bn_1'} if use_bn else set()))
  assert 'bias' not in params['last_layer']
  assert ('bias' in params['dense_0']) != use_bn  # BN's own bias replaces a hidden Dense's
  apply = jax.jit(lambda p: head.apply({**variables, 'params': p}, h, train=True,
                                       mutable=['batch_stats'])[0])
  bottleneck, logits = apply(params)
  np.testing.assert_allclose(np.linalg.norm(bottleneck, axis=-1), 1.0, rtol=1e-5)
  scaled = {**params, 'last_layer': {'kernel': params['last_layer']['kernel'] * 7.0}}
  np.testing.assert_allclose(apply(scaled)[1], logits, rtol=1e-5, atol=1e-6)
  assert np.all(np.abs(logits) <= 1.0 + 1e-6)  # cosines of unit vectors


def test_teacher_temperature_warms_up_linearly():
  temp = lambda step: float(dino.teacher_temperature(step, warmup=0.04, final=0.07,
                                                     warmup_steps=10))
  np.testing.assert_allclose([temp(0), temp(5), temp(10), temp(50)], [0.04, 0.055, 0.07, 0.07],
                             rtol=1e-6)


def test_loss_teacher_centre_and_gradients():
  config = _config(momentum=0.9, freeze_last_layer_epochs=1.0)
  method, params, batch_stats, extra, batch = _setup(config)
  # A teacher that differs from the student and a non-zero centre, as after some steps.
  extra = {'teacher': {'params': _perturbed(params, jax.random.key(5)),
                       'batch_stats': extra['teacher']['batch_stats']},
           'center': jnp.asarray(np.random.default_rng(6).normal(size=12) * 0.3, jnp.float32)}

  def loss_of(params, extra, step, batch=batch):
    return method.loss(params, batch_stats, extra, batch, step, jax.random.key(2))

  grad_fn = jax.jit(jax.value_and_grad(loss_of, argnums=(0, 1), has_aux=True))
  network = _network(config)

  @jax.jit
  def reference(params, extra, temp):
    teacher = jax.tree_util.tree_map(lambda t, s: 0.9 * t + 0.1 * s,
                                     extra['teacher']['params'], params)
    (h, (bottleneck, student)), _ = common.apply_train(network, params, batch_stats,
                                                       batch.views)
    (_, (_, teacher_logits)), _ = common.apply_train(
        network, teacher, extra['teacher']['batch_stats'], batch.views[:2])
    value = losses.dino(student, teacher_logits, extra['center'], student_temp=0.1,
                        teacher_temp=temp)
    return value, teacher, teacher_logits, h, bottleneck

  for step, temp, frozen in ((0, 0.04, True), (8, 0.055, False), (20, 0.07, False)):
    (value, out), (grad, grad_extra) = grad_fn(params, extra, jnp.int32(step))
    want, teacher, teacher_logits, h, bottleneck = reference(params, extra, temp)
    np.testing.assert_allclose(value, want, rtol=1e-5)
    np.testing.assert_allclose(out.metrics['teacher_temp'], temp, rtol=1e-6)
    # Stop-gradients: nothing reaches the teacher or the centre.
    for leaf in jax.tree_util.tree_leaves(grad_extra):
      np.testing.assert_array_equal(leaf, 0.0)
    last_layer = np.abs(np.asarray(grad['head']['last_layer']['kernel'])).max()
    assert (last_layer == 0.0) == frozen, step
    for part in ('encoder', 'head'):
      assert sum(np.sum(np.square(g)) for g in jax.tree_util.tree_leaves(grad[part])) > 0

  # State: the teacher took its EMA step (momentum 0.9), the centre moved towards the mean of
  # the teacher's outputs over both global views.
  for got, want in zip(jax.tree_util.tree_leaves(out.extra['teacher']['params']),
                       jax.tree_util.tree_leaves(teacher)):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(
      out.extra['center'],
      0.9 * extra['center'] + 0.1 * np.mean(np.asarray(teacher_logits), axis=(0, 1)),
      rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out.features, h, rtol=1e-6)
  np.testing.assert_allclose(out.embeddings[0], bottleneck[0], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(out.embeddings[1], bottleneck[1], rtol=1e-6, atol=1e-6)
  assert set(out.extra) == {'teacher', 'center'}

  # The teacher sees only the global views: other local crops change the loss, not the centre.
  other = batch._replace(views=batch.views[:2] + tuple(1.0 - v for v in batch.views[2:]))
  (other_value, other_out), _ = grad_fn(params, extra, jnp.int32(20), other)
  # Equal up to float rounding: the same program computes it from the same global views, but
  # XLA's CPU loop emitter (the suite's fast-compile flags, tests/shared_run.py) may fuse the
  # reduction with work on the local crops and round differently (seen: 1 ulp in 3 of 12). A
  # centre that saw the local crops would move by orders of magnitude more.
  np.testing.assert_allclose(other_out.extra['center'], out.extra['center'], rtol=1e-6,
                             atol=1e-8)
  assert abs(float(other_value) - float(value)) > 1e-6


def test_teacher_starts_as_a_copy_of_the_student():
  _, params, _, extra, _ = _setup(_config())
  for a, b in zip(jax.tree_util.tree_leaves(extra['teacher']['params']),
                  jax.tree_util.tree_leaves(params)):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(extra['center'], 0.0)


@pytest.mark.parametrize('field,value,match', [
    ('teacher_temp', 0.0, r'config\.dino\.teacher_temp=0\.0 must be positive'),
    ('center_momentum', 1.5, r'config\.dino\.center_momentum=1\.5 must be in \[0, 1\]'),
    ('momentum_schedule', 'linear', r"config\.dino\.momentum_schedule='linear' is unknown"),
    ('out_dim', 0, r'config\.dino\.out_dim=0 must be >= 1'),
    ('warmup_teacher_temp_epochs', -1.0, r'config\.dino\.warmup_teacher_temp_epochs=-1\.0'),
])
def test_bad_config_names_the_field(field, value, match):
  with pytest.raises(ConfigError, match=match):
    dino.create(_config(**{field: value}), INFO)
