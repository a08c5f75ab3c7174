"""Shared check of the loss tests: a loss sharded over the 8 simulated devices equals one device.

Imported by the test modules of this folder (pytest puts the folder on sys.path).
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding


def mesh():
  """The 8-device ('data',) mesh of tests/conftest.py's simulated CPU devices."""
  assert jax.device_count() == 8, 'tests/conftest.py sets 8 simulated CPU devices'
  return Mesh(np.asarray(jax.devices()), ('data',))


def assert_sharded_equals_single(loss_fn, args, placements, argnums=None):
  """Loss and gradients of `loss_fn` under jit on the 8-device mesh equal one device's.

  Args:
    loss_fn: scalar function of `args`.
    args: the arrays (NumPy or JAX).
    placements: a list of placements, each one PartitionSpec per argument; every argument must
      end up on all 8 devices with exactly that spec.
    argnums: the arguments to differentiate (default: all).
  """
  argnums = tuple(range(len(args))) if argnums is None else tuple(argnums)
  loss_and_grads = jax.jit(jax.value_and_grad(loss_fn, argnums=argnums))
  args = [jnp.asarray(a) for a in args]
  single_loss, single_grads = loss_and_grads(*args)
  assert np.isfinite(single_loss) and all(np.all(np.isfinite(g)) for g in single_grads)
  for specs in placements:
    placed = [jax.device_put(a, NamedSharding(mesh(), spec)) for a, spec in zip(args, specs)]
    for a, spec in zip(placed, specs):
      assert len(a.sharding.device_set) == 8 and a.sharding.spec == spec
    loss, grads = loss_and_grads(*placed)
    np.testing.assert_allclose(loss, single_loss, rtol=1e-5, atol=1e-6, err_msg=f'{specs}')
    for argnum, got, want in zip(argnums, grads, single_grads):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6,
                                 err_msg=f'argument {argnum} under {specs}')
