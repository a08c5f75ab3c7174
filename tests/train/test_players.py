"""Players in the shared step: each player's own optimizer on its own parameter groups, in
order, k updates each, a later player seeing the earlier one's update; the non-finite guard
and the checks of a player set."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jssl.config import ConfigError
from jssl.methods.base import LossOutput, Method, Player
from jssl.train import optim
from jssl.train.state import TrainState
from jssl.train.step import check_players, init_probe, make_train_step


def _method(a_steps=2, b_loss=None):
  def a_loss(params, batch_stats, extra, inputs, step, rng):
    value = jnp.square(params['a'] - inputs['target'])
    return value, LossOutput(batch_stats, extra, {'a_seen': params['a']}, None)

  def default_b_loss(params, batch_stats, extra, inputs, step, rng):
    value = jnp.square(params['b'] - params['a'])  # chases the *updated* a
    return value, LossOutput(batch_stats, extra, {'a_seen_by_b': params['a']}, None)

  players = (Player('first', ('a',), a_loss, steps=a_steps),
             Player('second', ('b',), b_loss or default_b_loss))
  return Method(name='toy', views=(), features_dim=1, init=None, loss=None, encode=None,
                prepare=lambda rng, batch, constants: batch, players=players)


def _state(method, optimizers, params):
  tx = optim.players_optimizer(method.players, optimizers)
  probe = init_probe(1, 2)
  return TrainState(step=jnp.zeros((), jnp.int32), rng=jax.random.key_data(jax.random.key(0)),
                    params=params, batch_stats={}, opt_state=tx.init(params), extra={},
                    probe_params=probe, probe_opt_state=optax.adam(1e-3).init(probe),
                    nonfinite_step=jnp.full((), -1, jnp.int32)), tx


def test_players_update_in_order_with_their_own_optimizers():
  method = _method()
  optimizers = {'first': optax.sgd(0.25), 'second': optax.sgd(0.5)}
  state, tx = _state(method, optimizers, {'a': jnp.float32(3.0), 'b': jnp.float32(-1.0)})
  step = jax.jit(make_train_step(method, tx, optax.adam(1e-3), lambda s: 0.0,
                                 player_optimizers=optimizers))
  batch = {'target': jnp.float32(1.0), 'label': jnp.zeros((1,), jnp.int32)}
  new, metrics = step(state, batch)
  a = 3.0
  for _ in range(2):  # k = 2 updates of the first player, SGD 0.25 on (a - 1)^2
    a = a - 0.25 * 2 * (a - 1.0)
  b = -1.0 - 0.5 * 2 * (-1.0 - a)  # one update of the second against the updated a
  np.testing.assert_allclose(new.params['a'], a, rtol=1e-6)
  np.testing.assert_allclose(new.params['b'], b, rtol=1e-6)
  np.testing.assert_allclose(metrics['a_seen_by_b'], a, rtol=1e-6)
  np.testing.assert_allclose(metrics['loss_second'], (-1.0 - a) ** 2, rtol=1e-6)
  np.testing.assert_allclose(metrics['loss'], metrics['loss_first'] + metrics['loss_second'])
  assert set(new.opt_state) == {'first', 'second'}
  assert 'online_probe_top1' not in metrics  # no features: no online probe
  assert int(new.step) == 1


def test_a_non_finite_player_leaves_the_whole_state_as_it_was():
  def bad(params, batch_stats, extra, inputs, step, rng):
    return jnp.log(params['b'] - 100.0), LossOutput(batch_stats, extra, {}, None)

  method = _method(b_loss=bad)
  optimizers = {'first': optax.sgd(0.25), 'second': optax.sgd(0.5)}
  state, tx = _state(method, optimizers, {'a': jnp.float32(3.0), 'b': jnp.float32(-1.0)})
  step = jax.jit(make_train_step(method, tx, optax.adam(1e-3), lambda s: 0.0,
                                 player_optimizers=optimizers))
  new, _ = step(state, {'target': jnp.float32(1.0), 'label': jnp.zeros((1,), jnp.int32)})
  assert int(new.nonfinite_step) == 0
  np.testing.assert_array_equal(new.params['a'], 3.0)  # the first player's update undone too
  np.testing.assert_array_equal(new.params['b'], -1.0)


def test_player_sets_are_checked():
  method = _method()
  check_players(method, {'a': 0, 'b': 0})
  with pytest.raises(ConfigError, match='exactly one player'):
    check_players(method, {'a': 0, 'b': 0, 'c': 0})
  overlap = method._replace(players=(method.players[0], method.players[1]._replace(
      params=('a', 'b'))))
  with pytest.raises(ConfigError, match='exactly one player'):
    check_players(overlap, {'a': 0, 'b': 0})
  with pytest.raises(ConfigError, match='at least 1'):
    check_players(method._replace(players=(method.players[0]._replace(steps=0),
                                           method.players[1])), {'a': 0, 'b': 0})
