"""Encoders and heads for jssl, and the lookup that builds an encoder from a config.

Every encoder maps images ``[B, H, W, C]`` in [0, 1] (C = 1 or 3) to a float32 representation
``[B, F]`` with ``F = encoder.features_dim``; it is called as
``encoder.apply(variables, images, train=...)`` with ``mutable=['batch_stats']`` when training.
BatchNorm uses no ``axis_name``: under ``jax.jit`` over ``NamedSharding``-sharded global arrays its
statistics are over the global batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jssl.models.generative import ConvDiscriminator, ConvEncoder, ConvGenerator
from jssl.models.gnn import GCN, GCNLayer, gcn_norm
from jssl.models.heads import MLPHead
from jssl.models.resnet import STEMS, BasicBlock, Bottleneck, ResNet, ResNet18, ResNet34, ResNet50
from jssl.models.small_cnn import DEFAULT_WIDTHS, SmallCNN
from jssl.models.transformer import CausalDecoder, TransformerBlock, TransformerEncoder

ENCODERS = {
    'small_cnn': SmallCNN,
    'resnet18': ResNet18,
    'resnet34': ResNet34,
    'resnet50': ResNet50,
}

DTYPES = {
    'float32': jnp.float32,
    'bfloat16': jnp.bfloat16,
}


def create_encoder(
    name: str,
    *,
    stem: str = 'cifar',
    width_multiplier: int = 1,
    widths: Sequence[int] | None = None,
    dtype: str = 'float32',
    mean: Any = 0.5,
    std: Any = 0.25,
    small_cnn_matmul_convs: bool = True,
) -> nn.Module:
  """Builds an encoder by name.

  Args:
    name: one of ``ENCODERS``: 'small_cnn', 'resnet18', 'resnet34', 'resnet50'.
    stem: ResNet stem, 'cifar' (3x3 stride-1 conv) or 'imagenet' (7x7 stride-2 conv + max-pool);
      validated for every encoder, used only by ResNets.
    width_multiplier: positive int multiplying every width (for 'small_cnn', every entry of
      ``widths``).
    widths: 'small_cnn' block widths (default ``(32, 64, 128)``); must be None for ResNets.
    dtype: computation dtype, 'float32' or 'bfloat16'; params are always float32.
    mean: input mean subtracted inside the model (float or per-channel sequence).
    std: input std divided by inside the model (float or per-channel sequence).
    small_cnn_matmul_convs: 'small_cnn' only: `SmallCNN.matmul_convs` (faster on CPU).

  Returns:
    An unbound ``nn.Module``; its ``features_dim`` is the representation size F.

  Raises:
    ValueError: for an unknown name, stem or dtype, or inconsistent arguments.
  """
  if name not in ENCODERS:
    raise ValueError(f'Unknown encoder {name!r}; valid encoders are {sorted(ENCODERS)}.')
  if stem not in STEMS:
    raise ValueError(f'Unknown stem {stem!r}; valid stems are {list(STEMS)}.')
  if dtype not in DTYPES:
    raise ValueError(f'Unknown dtype {dtype!r}; valid dtypes are {sorted(DTYPES)}.')
  if not isinstance(width_multiplier, int) or width_multiplier < 1:
    raise ValueError(f'width_multiplier must be a positive int, got {width_multiplier!r}.')
  if name == 'small_cnn':
    widths = tuple(DEFAULT_WIDTHS if widths is None else widths)
    if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
      raise ValueError(f'small_cnn widths must be a non-empty sequence of positive ints, got '
                       f'{widths!r}.')
    return SmallCNN(
        widths=tuple(w * width_multiplier for w in widths),
        dtype=DTYPES[dtype], mean=mean, std=std, matmul_convs=bool(small_cnn_matmul_convs))
  if widths is not None:
    raise ValueError(f'widths={widths!r} only applies to small_cnn; for {name!r} use '
                     f'width_multiplier instead.')
  return ENCODERS[name](
      stem=stem, width_multiplier=width_multiplier, dtype=DTYPES[dtype], mean=mean, std=std)


def encoder_features_dim(
    name: str, *, width_multiplier: int = 1, widths: Sequence[int] | None = None) -> int:
  """The representation size F of ``create_encoder(name, ...)``, without building params."""
  return create_encoder(name, width_multiplier=width_multiplier, widths=widths).features_dim


def encoder_from_config(model_config) -> nn.Module:
  """`create_encoder` from a config's `model` section (encoder, stem, widths, dtype, ...)."""
  widths = model_config.get('widths')
  return create_encoder(model_config.encoder, stem=model_config.stem,
                        width_multiplier=model_config.width_multiplier,
                        widths=tuple(widths) if widths else None, dtype=model_config.dtype,
                        small_cnn_matmul_convs=model_config.get('small_cnn_matmul_convs', True))


def features_dim(model_config) -> int:
  """The representation size F of the encoder a config's `model` section describes."""
  return encoder_from_config(model_config).features_dim


def weight_decay_mask(params: Any) -> Any:
  """Which parameters get weight decay: conv/dense kernels only.

  Biases (of Dense layers and of BatchNorm) and BatchNorm scales are excluded, as in SimCLR,
  BYOL and LARS practice. Relies on Flax naming: weights are leaves called ``kernel``.

  Args:
    params: a params pytree (nested dicts as returned by ``module.init(...)['params']``).

  Returns:
    A pytree of the same structure with a Python bool per leaf, usable as an optax ``mask``.
  """

  def is_kernel(path, _):
    last = path[-1]
    return getattr(last, 'key', getattr(last, 'name', None)) == 'kernel'

  return jax.tree_util.tree_map_with_path(is_kernel, params)


__all__ = [
    'DTYPES',
    'ENCODERS',
    'BasicBlock',
    'Bottleneck',
    'CausalDecoder',
    'ConvDiscriminator',
    'ConvEncoder',
    'ConvGenerator',
    'GCN',
    'GCNLayer',
    'MLPHead',
    'ResNet',
    'ResNet18',
    'ResNet34',
    'ResNet50',
    'SmallCNN',
    'TransformerBlock',
    'TransformerEncoder',
    'create_encoder',
    'encoder_features_dim',
    'gcn_norm',
    'weight_decay_mask',
]
