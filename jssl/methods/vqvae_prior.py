"""VQ-VAE, stage two (van den Oord et al. 2017): a Gated PixelCNN prior over the codes of a
trained VQ-VAE, read from that run's workdir; with it the two-stage model has a likelihood.

The stage-one run (`jssl/methods/vqvae.py`) is named by `config.vqvae_prior.stage_one_workdir`:
its `run_config.json` gives its config (its method must be 'vqvae', on this run's dataset and
image size), its newest checkpoint the encoder, decoder and codebook, which this run holds
frozen in `extra['stage_one']` (checkpointed with it, so a resumed run never re-reads them).

Step: the step's binarized images (`common.binarize`, as in stage one) are encoded and
quantised by the frozen stage one into a grid of code indices [B, h, w]; the prior
(`jssl.models.pixelcnn.GatedPixelCNN` with `embed_inputs`, a K-way softmax per position, raster
order) is trained on them by their NLL (`jssl.losses.discretized_nll`).

Evaluation (`evaluate`), on the first `eval_examples` binarized test images (the same images as
the VAE's, MADE's and the PixelCNN's): with q(z | x) the one-hot code grid of x,
-log p(x) <= -log p(x | z) - log p(z) (the ELBO of a deterministic posterior: its entropy is
0), so `bits_per_dim` = (`reconstruction_nll` + `prior_nll`) / (pixels * ln 2), an upper bound;
`prior_nll` alone and the uniform prior's L ln K beside it. 64 samples: codes drawn position by
position from the prior, decoded by stage one (`samples_step<N>.png`, the decoder's
probabilities). Representation (probes): the prior's features (mean of its last horizontal
stack) of the grey image's codes.
"""

from __future__ import annotations

import logging
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jssl import encoder as encoder_lib
from jssl import losses
from jssl.config import ConfigError
from jssl.eval import evaluate as evaluation
from jssl.methods import common
from jssl.methods import vqvae
from jssl.methods.base import LossOutput
from jssl.methods.base import Method
from jssl.methods.base import TrainInfo
from jssl.models.pixelcnn import GatedPixelCNN
from jssl.train import workdir as workdir_record

log = logging.getLogger(__name__)


def load_stage_one(config: ml_collections.ConfigDict, info: TrainInfo):
  """(stage one's config, its frozen {'encoder', 'decoder', 'codebook'} as NumPy, its step).

  Raises:
    ConfigError: no such workdir, no record or checkpoint in it, not a VQ-VAE, or another
      dataset or image size than this run's.
  """
  path = config.vqvae_prior.stage_one_workdir
  fix = ('train stage one first (python -m jssl.main --config=experiments/configs/vqvae.py'
         f'[:variant] --workdir={path}) or point --config.vqvae_prior.stage_one_workdir at it')
  if not path or not os.path.isdir(path):
    raise ConfigError(f'config.vqvae_prior.stage_one_workdir={path!r} is not a directory; {fix}.')
  record = workdir_record.read_record(path)
  checkpoints = os.path.join(os.path.abspath(path), 'checkpoints')
  if record is None or not os.path.isdir(checkpoints):
    raise ConfigError(f'{path} holds no finished jssl run (no {workdir_record.RECORD_NAME} or '
                      f'checkpoints); {fix}.')
  stage = encoder_lib.config_from_record(record['config'])
  if stage.method != 'vqvae':
    raise ConfigError(f'{path} holds a {stage.method!r} run; the prior needs a vqvae run ({fix}).')
  for field in ('name', 'image_size'):
    if stage.dataset[field] != config.dataset[field]:
      raise ConfigError(f'stage one in {path} has dataset.{field}={stage.dataset[field]!r}, '
                        f'this run {config.dataset[field]!r}: the prior must model the codes '
                        'of the same images (use the matching vqvae_prior.py variant).')
  try:
    trained = encoder_lib.load_encoder(path)  # its newest readable checkpoint
  except FileNotFoundError as error:
    raise ConfigError(f'{error} {fix}.') from None
  step, params, extra = trained.step, trained.state.params, trained.state.extra
  frozen = {'encoder': params['encoder'], 'decoder': params['decoder'],
            'codebook': vqvae.codebook_of(params, extra)}
  frozen = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), frozen)
  log.info('vqvae_prior: stage one from %s at step %d', path, step)
  return stage, frozen, int(step)


def create(config: ml_collections.ConfigDict, info: TrainInfo) -> Method:
  """Builds the prior from `config.vqvae_prior` over the codes of a trained VQ-VAE."""
  common.require_positive_ints(config, 'vqvae_prior', ('features', 'num_layers', 'eval_examples',
                                                       'num_samples'))
  c = config.vqvae_prior
  for field in ('kernel_size', 'first_kernel_size'):
    if not isinstance(c[field], int) or c[field] < 3 or c[field] % 2 == 0:
      raise ConfigError(f'config.vqvae_prior.{field}={c[field]!r} must be an odd integer >= 3.')
  stage, frozen, _ = load_stage_one(config, info)
  nets = vqvae.networks(stage, info)
  num_codes = stage.vqvae.num_codes
  height, width = nets.grid
  num_dims = int(np.prod(nets.image_shape))
  network = GatedPixelCNN(levels=num_codes, features=c.features, num_layers=c.num_layers,
                          kernel_size=c.kernel_size, first_kernel_size=c.first_kernel_size,
                          embed_inputs=True)

  def init(rng, example):
    del example
    params = network.init(rng, jnp.zeros((2, height, width), jnp.int32))['params']
    return {'prior': params}, {}, {'stage_one': jax.tree_util.tree_map(jnp.asarray, frozen)}

  def prepare(rng, batch, constants):
    del constants
    return common.binarized_inputs(rng, batch)

  def codes_of(stage_one, x):
    z_e = nets.encode(stage_one, x)
    return jax.lax.stop_gradient(
        losses.vq_codebook_losses(z_e, stage_one['codebook'], commitment=0.0).indices)

  def prior(params, codes):
    return network.apply({'params': params['prior']}, codes)

  def loss(params, batch_stats, extra, inputs, step, rng):
    del step, rng
    codes = codes_of(extra['stage_one'], inputs['x'])
    logits, features = prior(params, codes)
    nll = losses.discretized_nll(logits, codes[..., None])
    metrics = {'prior_nll': jnp.mean(nll),
               'prior_bits_per_code': jnp.mean(nll) / (height * width * math.log(2))}
    return jnp.mean(nll), LossOutput(batch_stats=batch_stats, extra=extra, metrics=metrics,
                                     features=features)

  def represent(params, batch_stats, batch, constants):
    """The prior's features of the grey images' codes. `represent` sees no `extra`, so stage
    one comes from the workdir as loaded now; `evaluate` checks it is the state's."""
    del batch_stats, constants
    grey = batch['image'].astype(jnp.float32) / 255.0
    return prior(params, codes_of(frozen, grey))[1]

  def decode(stage_one, codes):
    return nets.decode(stage_one, stage_one['codebook'][codes])

  def scores(params, extra, x):
    """Per example: the prior's NLL of x's codes and the decoder's NLL of x given them."""
    stage_one = extra['stage_one']
    codes = codes_of(stage_one, x)
    prior_nll = losses.discretized_nll(prior(params, codes)[0], codes[..., None])
    return prior_nll, losses.bernoulli_nll(decode(stage_one, codes), x)

  def sample(params, extra, key):
    """`num_samples` code grids drawn in raster order, decoded: probabilities [N, H, W, C]."""
    keys = jax.random.split(key, height * width)

    def draw(i, codes):
      row, col = i // width, i % width
      logits = prior(params, codes)[0][:, row, col, 0]  # [N, K]
      return codes.at[:, row, col].set(jax.random.categorical(keys[i], logits))

    codes = jax.lax.fori_loop(0, height * width, draw,
                              jnp.zeros((c.num_samples, height, width), jnp.int32))
    return jax.nn.sigmoid(decode(extra['stage_one'], codes))

  jitted = {}

  def evaluate(context):
    state, test = context.state, context.dataset.test
    held = np.asarray(state.extra['stage_one']['codebook'])
    if not np.array_equal(held, frozen['codebook']):
      raise ConfigError(f'the VQ-VAE in {c.stage_one_workdir} changed after this prior started '
                        '(its codebook differs from the one in the checkpoint): the probes '
                        'would read other codes. Restore that run, or train a new prior.')
    if not jitted:  # compiled once per run, outputs replicated for every process
      jitted.update(scores=evaluation.replicated_jit(scores, context.mesh),
                    sample=evaluation.replicated_jit(sample, context.mesh))
    count = min(len(test), c.eval_examples)
    sums = np.zeros(2)
    for start, _, binary in common.binarized_test_batches(test, count,
                                                          context.config.eval.batch_size):
      values = jitted['scores'](state.params, state.extra,
                                evaluation.global_array(binary, context.mesh))
      keep = min(binary.shape[0], count - start)
      sums += [np.sum(np.asarray(v, np.float64)[:keep]) for v in values]
    prior_nll, reconstruction_nll = sums / count
    results = {'prior_nll': prior_nll, 'reconstruction_nll': reconstruction_nll,
               'uniform_prior_nll': height * width * math.log(num_codes),
               'bits_per_dim': (prior_nll + reconstruction_nll) / (num_dims * math.log(2))}
    common.write_samples(context, jitted['sample'], state.params, state.extra, jax.random.key(0))
    return results

  return Method(name='vqvae_prior', views=(), features_dim=c.features, init=init, loss=loss,
                encode=None, prepare=prepare, represent=represent, evaluate=evaluate)
