"""SwAV: multi-crop grouping, the loss against the loss function on the network's scores,
prototype normalisation and freezing, the queue (push, start step, no gradient), config errors
and a short digits run. Checks share one compiled loss where they can (compiles dominate)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl import losses
from jssl import models
from jssl.config import ConfigError
from jssl.methods import TrainInfo
from jssl.methods import common
from jssl.methods import swav
from tiny import BATCH, tiny_config, initialise

# 64 examples / batch 8: 8 steps per epoch.
INFO = TrainInfo(num_examples=64, num_classes=10, image_channels=1, num_steps=40)


def _config(**overrides):
  config = tiny_config('swav', image_size=8, **{'num_prototypes': 6, **overrides})
  config.augment.local_crop_size = 4
  return config


def _setup(config):
  method = swav.create(config, INFO)
  return (method, *initialise(method))


def _network(config):
  return swav.MultiCropNetwork(
      encoder=models.encoder_from_config(config.model),
      head=swav.SwAVHead(projector=common.projection_head(config),
                         num_prototypes=config.swav.num_prototypes))


def test_views_are_two_global_then_local_crops():
  config = _config()
  method = swav.create(config, INFO)
  assert [v.out_size for v in method.views] == [8, 8, 4, 4]
  assert method.views[2].crop_scale == tuple(config.augment.local_crop_scale)


def test_loss_queue_freezing_and_gradients():
  # Queue of 2 batches, used from epoch 0.5 = step 4 (and once full: step 2); prototypes
  # frozen for the first epoch (8 steps).
  config = _config(queue_size=2 * BATCH, queue_start_epoch=0.5, freeze_prototypes_epochs=1.0)
  method, params, batch_stats, extra, batch = _setup(config)
  extra = {**extra, 'queue_pointer': jnp.asarray(BATCH + 3, jnp.int32)}  # a wrapping push
  assert extra['queue'].shape == (2, 2 * BATCH, 8)

  def loss_of(params, queue, step):
    return method.loss(params, batch_stats, {**extra, 'queue': queue}, batch, step,
                       jax.random.key(2))

  grad_fn = jax.jit(jax.value_and_grad(loss_of, argnums=(0, 1), has_aux=True))
  network = _network(config)

  @jax.jit
  def reference(params):
    h, (z, scores) = common.apply_train(network, params, batch_stats, batch.views)[0]
    prototypes = losses.l2_normalize(params['head']['prototypes']['kernel'], axis=0)
    hyper = {'num_global': 2, 'temperature': 0.1, 'epsilon': config.swav.epsilon,
             'num_iters': 3}
    with_queue = losses.swav_multicrop(scores, queue_scores=extra['queue'] @ prototypes, **hyper)
    # The encoder once on the two global views, interleaved (BatchNorm over those 2B images),
    # and on view 0 alone.
    encoder = functools.partial(common.apply_train, network.encoder, params['encoder'],
                                batch_stats['encoder'])
    global_group = encoder(common.interleave(batch.views[:2]))[0][::2]
    alone = encoder(batch.views[0])[0]
    return h, z, with_queue, losses.swav_multicrop(scores, **hyper), global_group, alone

  h, z, with_queue, without_queue, global_group, alone = reference(params)
  assert abs(float(with_queue) - float(without_queue)) > 1e-4
  # The features come from the global views' group; BatchNorm statistics matter.
  np.testing.assert_allclose(h, global_group, rtol=1e-5, atol=1e-6)
  assert not np.allclose(h, alone, atol=1e-3)

  for step, queue_used, frozen in ((3, False, True), (4, True, True), (8, True, False)):
    (value, out), (grad, grad_queue) = grad_fn(params, extra['queue'], jnp.int32(step))
    np.testing.assert_allclose(value, with_queue if queue_used else without_queue, rtol=1e-5)
    assert float(out.metrics['queue_in_use']) == queue_used
    np.testing.assert_array_equal(grad_queue, 0.0)
    prototype_grad = np.abs(np.asarray(grad['head']['prototypes']['kernel'])).max()
    assert (prototype_grad == 0.0) == frozen, step
    for part in ('encoder', 'head'):
      assert sum(np.sum(np.square(g)) for g in jax.tree_util.tree_leaves(grad[part])) > 0

  np.testing.assert_allclose(out.features, h, rtol=1e-6)
  np.testing.assert_allclose(out.embeddings[0], z[0], rtol=1e-6)
  np.testing.assert_allclose(out.embeddings[1], z[1], rtol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(z, axis=-1), 1.0, rtol=1e-5)
  # The push: rows 11..15 and 0..2 of each view's queue now hold that view's unit projections.
  rows = (BATCH + 3 + np.arange(BATCH)) % (2 * BATCH)
  others = np.setdiff1d(np.arange(2 * BATCH), rows)
  pushed, queue = np.asarray(out.extra['queue']), np.asarray(extra['queue'])
  for view in range(2):
    np.testing.assert_allclose(pushed[view, rows], z[view], atol=1e-6)
    np.testing.assert_array_equal(pushed[view, others], queue[view, others])
  assert int(out.extra['queue_pointer']) == 3

  # The prototypes are used at unit norm: rescaling their columns changes nothing; moving
  # them does.
  kernel = np.asarray(params['head']['prototypes']['kernel'])

  def with_kernel(new_kernel):
    head = {**params['head'], 'prototypes': {'kernel': jnp.asarray(new_kernel)}}
    return {**params, 'head': head}

  value = grad_fn(params, extra['queue'], jnp.int32(3))[0][0]
  scaled = grad_fn(with_kernel(kernel * np.arange(1.0, 7.0)), extra['queue'], jnp.int32(3))
  np.testing.assert_allclose(scaled[0][0], value, rtol=1e-5)
  moved = grad_fn(with_kernel(kernel[:, ::-1] + 0.5), extra['queue'], jnp.int32(3))
  assert abs(float(moved[0][0]) - float(value)) > 1e-4


@pytest.mark.parametrize('field,value,match', [
    ('queue_size', 12, r'config\.swav\.queue_size=12 .* --config\.swav\.queue_size=8'),
    ('queue_size', -8, r'config\.swav\.queue_size=-8 must be 0'),
    ('epsilon', 0.0, r'config\.swav\.epsilon=0\.0 must be positive'),
    ('sinkhorn_iterations', 0, r'config\.swav\.sinkhorn_iterations=0 must be >= 1'),
    ('num_prototypes', 0, r'config\.swav\.num_prototypes=0 must be >= 1'),
    ('freeze_prototypes_epochs', -1, r'config\.swav\.freeze_prototypes_epochs=-1(\.0)? must be'),
])
def test_bad_config_names_the_field(field, value, match):
  with pytest.raises(ConfigError, match=match):
    swav.create(_config(**{field: value}), INFO)
