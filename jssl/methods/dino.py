"""DINO (Caron et al. 2021): self-distillation with no labels, with multi-crop.

The student (encoder + DINO head) sees every view; the teacher, an EMA of the student with a
cosine momentum schedule (0.996 -> 1 in the paper), sees only the two global views. The
teacher's outputs are centred (minus a running mean of them, momentum 0.9) and sharpened
(temperature 0.04, or 0.04 -> 0.07 after a linear warm-up) into targets with no gradient;
the student's softmax at temperature 0.1 predicts them for every pair (teacher view i, student
view v != i), averaged over the pairs (`jssl.losses.dino`). Centring prevents one output from dominating,
sharpening prevents the uniform collapse.

Choices where the paper leaves room:

* The head (`DINOHead`): `head_layers` Dense layers (hidden `head_hidden_dim`, GELU), the last
  to `bottleneck_dim`, then L2 normalisation and a weight-normalised linear layer without bias
  to `out_dim` (`NormalizedLinear`: the gain is fixed to 1, DINO's `norm_last_layer=True`).
  Dense layers are initialised with a truncated normal of std 0.02 as in DINO's code. The last
  layer's gradient is stopped during the first `freeze_last_layer_epochs` (DINO's code: 1
  epoch), which stabilises the start.
* BatchNorm: the encoder (small CNN, ResNet) keeps its BatchNorm, as DINO's ResNet-50 runs do
  (with SyncBN: statistics over the global batch, here automatic). The student's encoder runs
  once per resolution group (the two global views interleaved in one call, the local views in
  another), as DINO's multi-crop wrapper does, so the statistics are per group. The paper's
  head has no BatchNorm (`head_bn=False`, used for cifar10); `head_bn=True` (DINO's
  `use_bn_in_head` option) adds it before each GELU, normalising over all views at once since
  the head runs once on every view. The small-CNN configs turn it on: without it the digits
  run collapsed to uniform targets (see experiments/configs/dino.py). The teacher runs in
  training mode, with its own running averages, as DINO's teacher (never put in eval mode);
  its parameters are the EMA, its batch statistics its own (like MoCo v3 here).
* Teacher temperature: linear in the step from `warmup_teacher_temp` to `teacher_temp` over
  `warmup_teacher_temp_epochs` epochs (DINO's code is a per-epoch staircase reaching the final
  value at the last warm-up epoch; per step is smoother and exact for any epoch length), then
  constant. Epochs are converted with `steps_per_epoch = num_examples // batch_size`, the
  shared iterator's.
* Order within a step (as MoCo v3 here, equal to DINO's): the teacher takes its EMA step towards
  the current student, then computes the targets; the loss uses the centre from before the
  step, and the centre is updated with this step's teacher outputs (over both global views and
  the global batch).
* Diagnostics embeddings: the student's L2-normalised bottleneck outputs of the two global
  views (the space the weight-normalised last layer scores, like SwAV's unit projections;
  `out_dim` logits would be a large, mostly redundant space).

State (`extra`): 'teacher' {params, batch_stats} of the whole student network (encoder and
head), 'center' [out_dim] float32.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jssl import losses
from jssl import models
from jssl.config import ConfigError
from jssl.methods import common
from jssl.methods import memory
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo
# The multi-crop forward and the normalised linear layer are SwAV's, shared by DINO.
from jssl.methods.swav import MultiCropNetwork
from jssl.methods.swav import NormalizedLinear
from jssl.methods.swav import freeze_subtree
from jssl.methods.swav import multicrop_encode_fn
from jssl.methods.swav import steps_per_epoch

NUM_GLOBAL_VIEWS = 2
LAST_LAYER = ('head', 'last_layer', 'kernel')


class DINOHead(nn.Module):
  """DINO's projection head: [N, F] -> (unit bottleneck [N, bottleneck_dim], logits [N, out_dim]).

  `num_layers` Dense layers with GELU between them (and BatchNorm before each GELU when
  `use_bn`, DINO's `use_bn_in_head` option), the last to `bottleneck_dim`; L2 normalisation; a
  weight-normalised bias-free linear layer to `out_dim`.
  """
  hidden_dim: int
  bottleneck_dim: int
  out_dim: int
  num_layers: int = 3
  use_bn: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, h, *, train: bool):
    x = jnp.asarray(h).astype(self.dtype)
    widths = (self.hidden_dim,) * (self.num_layers - 1) + (self.bottleneck_dim,)
    for i, width in enumerate(widths):
      if i:
        if self.use_bn:
          x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                           dtype=self.dtype, param_dtype=jnp.float32, name=f'bn_{i - 1}')(x)
        x = nn.gelu(x, approximate=False)
      hidden = i < len(widths) - 1
      x = nn.Dense(width, use_bias=not (self.use_bn and hidden), dtype=self.dtype,
                   param_dtype=jnp.float32, kernel_init=nn.initializers.truncated_normal(0.02),
                   name=f'dense_{i}')(x)
    x = losses.l2_normalize(x.astype(jnp.float32))
    return x, NormalizedLinear(self.out_dim, name='last_layer')(x)


def teacher_temperature(step: jax.Array, *, warmup: float, final: float,
                        warmup_steps: int) -> jax.Array:
  """Linear warm-up of the teacher temperature from `warmup` (step 0) to `final`, then flat."""
  progress = jnp.minimum(jnp.asarray(step, jnp.float32) / max(warmup_steps, 1), 1.0)
  return warmup + (final - warmup) * progress


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks `config.dino`; raises ConfigError."""
  c = config.dino
  for field in ('student_temp', 'teacher_temp', 'warmup_teacher_temp'):
    if c[field] <= 0:
      raise ConfigError(f'config.dino.{field}={c[field]} must be positive (DINO: student 0.1, '
                        'teacher 0.04 -> 0.07).')
  memory.validate_ema('dino', c, paper='DINO: 0.996')
  if not 0.0 <= c.center_momentum <= 1.0:
    raise ConfigError(f'config.dino.center_momentum={c.center_momentum} must be in [0, 1] '
                      '(DINO: 0.9).')
  for field in ('head_hidden_dim', 'bottleneck_dim', 'out_dim', 'head_layers'):
    if c[field] < 1:
      raise ConfigError(f'config.dino.{field}={c[field]} must be >= 1 (DINO: 3 layers, hidden '
                        '2048, bottleneck 256, out_dim 65536).')
  for field in ('warmup_teacher_temp_epochs', 'freeze_last_layer_epochs'):
    if c[field] < 0:
      raise ConfigError(f'config.dino.{field}={c[field]} must be >= 0.')


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds DINO from `config.model`, `config.augment` (multi-crop) and `config.dino`."""
  validate(config)
  c = config.dino
  views = common.multicrop_views(config, 'DINO')
  head = DINOHead(hidden_dim=c.head_hidden_dim, bottleneck_dim=c.bottleneck_dim,
                  out_dim=c.out_dim, num_layers=c.head_layers, use_bn=c.head_bn,
                  dtype=models.DTYPES[config.model.dtype])
  model = MultiCropNetwork(encoder=models.encoder_from_config(config.model), head=head)
  epoch_steps = steps_per_epoch(config, info)
  warmup_steps = round(c.warmup_teacher_temp_epochs * epoch_steps)
  freeze_steps = round(c.freeze_last_layer_epochs * epoch_steps)

  def init(rng, images):
    params, batch_stats = common.init_variables(model, rng, (images,))
    extra = {'teacher': {'params': params, 'batch_stats': batch_stats},
             'center': jnp.zeros((c.out_dim,), jnp.float32)}
    return params, batch_stats, extra

  def loss(params, batch_stats, extra, batch, step, rng):
    del rng
    momentum, teacher_params = memory.ema_step(extra['teacher']['params'], params, step, c,
                                               info.num_steps)
    frozen = step < freeze_steps
    params = freeze_subtree(params, LAST_LAYER, frozen)
    (h, (bottleneck, student_logits)), batch_stats = common.apply_train(
        model, params, batch_stats, batch.views)
    (_, (_, teacher_logits)), teacher_stats = common.apply_train(
        model, teacher_params, extra['teacher']['batch_stats'], batch.views[:NUM_GLOBAL_VIEWS])
    teacher_logits = jax.lax.stop_gradient(teacher_logits)
    temp = teacher_temperature(step, warmup=c.warmup_teacher_temp, final=c.teacher_temp,
                               warmup_steps=warmup_steps)
    value = losses.dino(student_logits, teacher_logits, extra['center'],
                        student_temp=c.student_temp, teacher_temp=temp)
    center = losses.dino_center_update(extra['center'], teacher_logits,
                                       momentum=c.center_momentum)
    new_extra = {'teacher': {'params': teacher_params, 'batch_stats': teacher_stats},
                 'center': center}
    targets = jax.nn.softmax((teacher_logits - extra['center']) / temp, axis=-1)
    mean_target = jnp.mean(targets, axis=(0, 1))
    metrics = {
        'momentum': momentum,
        'teacher_temp': temp,
        'last_layer_frozen': frozen.astype(jnp.float32),
        # Per-sample target entropy -> 0: one-hot targets; batch entropy -> 0: every sample
        # has the same target (collapse to one output); both -> log K: uniform collapse.
        'teacher_entropy': -jnp.mean(jnp.sum(targets * jnp.log(targets + 1e-12), axis=-1)),
        'teacher_batch_entropy': -jnp.sum(mean_target * jnp.log(mean_target + 1e-12)),
    }
    bottleneck = jax.lax.stop_gradient(bottleneck)
    return value, LossOutput(batch_stats=batch_stats, extra=new_extra, metrics=metrics,
                             features=h, embeddings=(bottleneck[0], bottleneck[1]))

  return Method(name='dino', views=views, features_dim=models.features_dim(config.model),
                init=init, loss=loss, encode=multicrop_encode_fn(model))
