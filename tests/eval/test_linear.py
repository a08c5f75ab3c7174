"""The offline linear probe: optimum of its objective, choice on validation, reporting on test."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jssl.eval import fit_logistic_regression, linear_probe


def _blobs(rng, n, num_classes=3, dim=5, noise=1.0):
  centres = np.eye(num_classes, dim) * 3
  labels = rng.integers(0, num_classes, size=n)
  return (centres[labels] + rng.normal(size=(n, dim)) * noise).astype(np.float32), labels


def test_lbfgs_reaches_the_regularised_optimum():
  rng = np.random.default_rng(0)
  x, y = _blobs(rng, 200)
  l2 = 1e-2
  params = fit_logistic_regression(jnp.asarray(x), jnp.asarray(y), jnp.float32(l2),
                                   num_classes=3, num_steps=100)

  def objective(p):
    logits = x @ p['kernel'] + p['bias']
    return (optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            + l2 * jnp.sum(p['kernel'] ** 2))

  grads = jax.grad(objective)(params)
  assert max(float(jnp.abs(g).max()) for g in jax.tree_util.tree_leaves(grads)) < 1e-3


def test_probe_chooses_on_validation_and_reports_test():
  rng = np.random.default_rng(1)
  train, val, test = _blobs(rng, 300), _blobs(rng, 100), _blobs(rng, 100)
  result = linear_probe(*train, *val, *test, num_classes=3, l2_grid=(1e-4, 1e-2, 10.0),
                        num_steps=50)
  assert result['linear_top1'] > 0.85
  assert result['linear_l2'] in (1e-4, 1e-2)  # 10.0 shrinks the weights to near zero
  # Shuffled training labels leave nothing to learn: accuracy falls towards chance.
  shuffled = linear_probe(train[0], rng.permutation(train[1]), *val, *test, num_classes=3,
                          l2_grid=(1e-3,), num_steps=50)
  assert shuffled['linear_top1'] < 0.6
