"""AMDIM: the loss is the mean of the clipped, penalised InfoNCE terms across the two views at
every scale (global-local both ways; local-local from one sampled querying position per image, or
averaged over every querying position)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl import losses
from jssl import models
from jssl.config import ConfigError
from jssl.methods import TrainInfo
from jssl.methods import amdim
from jssl.methods import dim
from jssl.models.resnet import feature_maps
from tiny import initialise, tiny_config

INFO = TrainInfo(num_examples=64, num_classes=10, image_channels=1, num_steps=10)


def _config(**fields):
  config = tiny_config('amdim', **{'critic_dim': 8, **fields})
  config.model.widths = (4, 8, 8)
  return config


@pytest.mark.parametrize('local_queries', ['sampled', 'all'])
def test_loss_is_the_mean_of_the_multiscale_terms(local_queries):
  config = _config(score_clip=5.0, score_penalty=0.01, local_queries=local_queries)
  method = amdim.create(config, INFO)
  params, batch_stats, extra, batch = initialise(method)
  encoder, critic = models.encoder_from_config(config.model), dim.ResidualCritic(8)
  nce = lambda l, g: losses.dim_local_global(l, g, estimator='infonce', score_clip=5.0,
                                             score_penalty=0.01)

  @jax.jit
  def both(params):
    """The method's loss and the reference recomputed from the encoder's maps, one program."""
    rng = jax.random.key(2)
    value, out = method.loss(params, batch_stats, extra, batch, jnp.int32(0), rng)
    embedded, stats = [], batch_stats['encoder']
    for view in batch.views:  # BatchNorm statistics carry from the first view to the second
      h, state = encoder.apply({'params': params['encoder'], 'batch_stats': stats}, view,
                               train=True, mutable=['batch_stats', 'intermediates'])
      stats = state['batch_stats']
      maps = feature_maps(state['intermediates'])
      local = [critic.apply({'params': params[f'local_head_{i}']}, maps[b]).reshape(8, -1, 8)
               for i, b in enumerate((-1, -2))]
      embedded.append((h, critic.apply({'params': params['global_head']}, h), local))
    terms = []
    positions = amdim.local_query_positions(rng, 8, embedded[0][2][0].shape[1])
    for direction, (a, b) in enumerate(((0, 1), (1, 0))):
      terms += [nce(embedded[b][2][i], embedded[a][1]) for i in range(2)]
      queries = embedded[a][2][0]
      if local_queries == 'all':
        terms.append(jnp.mean(jnp.stack([nce(embedded[b][2][0], queries[:, q])
                                         for q in range(queries.shape[1])])))
      else:  # image n's query is its own map at the drawn position
        picked = jnp.stack([queries[n, positions[direction, n]] for n in range(8)])
        terms.append(nce(embedded[b][2][0], picked))
    return value, out, jnp.stack(terms), embedded[0][0], stats, positions

  value, out, terms, h, stats, positions = both(params)
  if local_queries == 'sampled':  # the draws differ between images and directions
    assert len(np.unique(np.asarray(positions))) > 2
  np.testing.assert_allclose(value, np.mean(terms), rtol=1e-5)
  np.testing.assert_allclose(out.metrics['nce_local_local'], (terms[2] + terms[5]) / 2, rtol=1e-5)
  np.testing.assert_allclose(out.features, h, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out.batch_stats['encoder']['bn_0']['mean'],
                             stats['bn_0']['mean'], rtol=1e-6)


@pytest.mark.parametrize('fields, message', [
    ({'local_blocks': ()}, 'must be distinct feature map indices'),
    ({'local_blocks': (-1, -1)}, 'must be distinct feature map indices'),
    ({'score_clip': 0.0}, 'score_clip=0.0 must be > 0'),
    ({'score_penalty': -1.0}, 'score_penalty=-1.0 must be >= 0'),
    ({'local_queries': 'some'}, "local_queries='some' is unknown"),
])
def test_bad_settings_are_clear_errors(fields, message):
  with pytest.raises(ConfigError, match=message):
    amdim.create(_config(**fields), INFO)
