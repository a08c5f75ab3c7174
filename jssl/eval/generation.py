"""How close generated images are to real ones: a Fréchet distance in the feature space of a
classifier trained on the dataset's own training split.

FID (Heusel et al. 2017) measures the Fréchet distance between Gaussians fitted to Inception-v3
features of real and generated images. No Inception weights can be had offline, and ImageNet
features suit digits and clothing poorly anyway, so jssl trains a small CNN classifier on the
training split (labels included: it is an evaluation instrument, never seen by the generator)
and uses its penultimate layer. The number is reported as `frechet_distance`, not FID: it is
comparable between runs on the same dataset and classifier settings, not with published FIDs.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.linalg

from jssl.data.base import Dataset
from jssl.models.small_cnn import SmallCNN


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)) of Gaussians fitted to two samples.

  Args:
    features_a: [N, F] features of one sample (e.g. real test images).
    features_b: [M, F] features of the other (generated images).

  Returns:
    The distance (float64 arithmetic; the matrix square root's imaginary rounding dropped).
  """
  a = np.asarray(features_a, np.float64)
  b = np.asarray(features_b, np.float64)
  mean_a, mean_b = a.mean(0), b.mean(0)
  cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  root = scipy.linalg.sqrtm(cov_a @ cov_b)
  if not np.all(np.isfinite(root)):  # singular product: regularise as FID's reference does
    offset = np.eye(cov_a.shape[0]) * 1e-6
    root = scipy.linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
  root = np.real(root)
  return float(np.sum(np.square(mean_a - mean_b)) + np.trace(cov_a + cov_b - 2.0 * root))


class _Classifier(nn.Module):
  widths: tuple
  num_classes: int

  @nn.compact
  def __call__(self, images, *, train: bool):
    features = SmallCNN(widths=self.widths)(images, train=train)
    return features, nn.Dense(self.num_classes)(features)


class FeatureClassifier(NamedTuple):
  """A trained classifier: `features(images uint8 [N, H, W, C]) -> [N, F]` (penultimate
  layer, inference mode) and its `test_top1` on the dataset's test split."""
  features: Callable[[np.ndarray], np.ndarray]
  test_top1: float


def train_feature_classifier(dataset: Dataset, *, steps: int = 400, batch_size: int = 128,
                             widths: tuple = (32, 64, 128), learning_rate: float = 2e-3,
                             seed: int = 0, chunk: int = 500) -> FeatureClassifier:
  """Trains `SmallCNN(widths)` + a linear layer on the training split with Adam (fixed seed,
  so two runs give the same classifier) and returns its feature function.

  Inputs are uint8 images scaled to [0, 1] at their stored size, no augmentation.
  """
  model = _Classifier(widths=tuple(widths), num_classes=dataset.num_classes)
  train = dataset.train
  rng = np.random.default_rng(seed)
  first = train.get_batch(np.arange(2))['image']
  variables = model.init(jax.random.key(seed), jnp.zeros(first.shape, jnp.float32), train=True)
  params, batch_stats = variables['params'], variables['batch_stats']
  tx = optax.adam(learning_rate)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, batch_stats, opt_state, images, labels):
    def loss_fn(params):
      (_, logits), updates = model.apply({'params': params, 'batch_stats': batch_stats}, images,
                                         train=True, mutable=['batch_stats'])
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
      return loss, updates['batch_stats']

    (_, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state

  for _ in range(steps):
    batch = train.get_batch(rng.choice(len(train), size=min(batch_size, len(train)),
                                       replace=False))
    params, batch_stats, opt_state = step(params, batch_stats, opt_state,
                                          jnp.asarray(batch['image'], jnp.float32) / 255.0,
                                          jnp.asarray(batch['label']))

  @jax.jit
  def apply(images):
    return model.apply({'params': params, 'batch_stats': batch_stats}, images, train=False)

  def run(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    feats, logits = [], []
    for start in range(0, len(images), chunk):
      part = np.asarray(images[start:start + chunk])
      pad = chunk - len(part)  # one compiled shape
      part = np.concatenate([part, np.zeros((pad, *part.shape[1:]), part.dtype)])
      scaled = part.astype(np.float32) / 255.0 if part.dtype == np.uint8 else part
      f, l = apply(jnp.asarray(scaled, jnp.float32))
      feats.append(np.asarray(f)[:chunk - pad])
      logits.append(np.asarray(l)[:chunk - pad])
    return np.concatenate(feats), np.concatenate(logits)

  test = dataset.test.get_batch(np.arange(len(dataset.test)))
  _, logits = run(test['image'])
  top1 = float(np.mean(np.argmax(logits, -1) == test['label']))
  return FeatureClassifier(features=lambda images: run(images)[0], test_top1=top1)
