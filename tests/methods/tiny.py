"""Shared set-up of the method unit tests: a tiny config, random views, an initialised method.

Imported by the test modules of this folder (pytest puts the folder on sys.path).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from jssl.config import load_config
from jssl.methods import Batch
from jssl.train.loop import Run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BATCH = 8


def tiny_config(name, *, projection_dim=8, image_size=None, variant=None, **section):
  """`experiments/configs/<name>.py[:variant]` (default digits) with a 4/8-channel CNN, a
  16-wide projector hidden layer, `projection_dim` outputs, batch BATCH, a 20-step linear probe
  at one L2 weight and `config.<name>` fields overridden."""
  spec = os.path.join(REPO, 'experiments', 'configs', f'{name}.py')
  config = load_config(spec + (f':{variant}' if variant else ''))
  config.model.widths = (4, 8)
  config.model.projection_hidden_dim = 16
  config.model.projection_dim = projection_dim
  config.batch_size = BATCH
  # Probes that run in seconds (they are checked for their own sake in tests/eval).
  config.eval.linear_steps = 20
  config.eval.linear_l2_grid = (1e-4,)
  if image_size is not None:
    config.dataset.image_size = image_size
  for key, value in section.items():
    config[name][key] = value
  return config


def random_views(sizes, seed=0):
  """One [BATCH, s, s, 1] uniform view per entry of `sizes`."""
  keys = jax.random.split(jax.random.key(seed), len(sizes))
  return tuple(jax.random.uniform(k, (BATCH, s, s, 1)) for k, s in zip(keys, sizes))


def initialise(method, sizes=None, *, shift=0.0, **extra_overrides):
  """(params, batch_stats, extra, batch) of `method` on random views (labels 0, index 0..B-1).

  `sizes` default to the method's views' `out_size`; `shift` is added to every parameter (to
  move an online network away from its EMA copy); `extra_overrides` replace entries of extra.
  """
  sizes = [v.out_size for v in method.views] if sizes is None else sizes
  views = random_views(sizes)
  params, batch_stats, extra = jax.jit(method.init)(jax.random.key(1), views[0])
  if shift:
    params = jax.tree_util.tree_map(lambda x: x + shift, params)
  extra = {**extra, **extra_overrides}
  batch = Batch(views=views, label=jnp.zeros(BATCH, jnp.int32), index=jnp.arange(BATCH))
  return params, batch_stats, extra, batch


def loop_steps(config, workdir, num_steps):
  """Metrics (host values) of `num_steps` steps of the shared loop's `Run`, epoch hooks included."""
  run = Run(config, workdir)
  try:
    return [jax.device_get(run.advance(next(run.iterator))) for _ in range(num_steps)]
  finally:
    run.iterator.close()


def cross_entropy(logits, labels):
  """Mean cross-entropy of integer labels, in float64 NumPy (a naive reference)."""
  logits = np.asarray(logits, np.float64)
  shifted = logits - logits.max(1, keepdims=True)
  log_softmax = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
  return -np.mean(log_softmax[np.arange(len(labels)), np.asarray(labels)])


def unit(x):
  """Rows of x scaled to unit L2 norm, in float64."""
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)
