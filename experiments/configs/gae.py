"""Graph autoencoders (Kipf & Welling 2016): a GCN encoder and an inner-product decoder trained
to reconstruct the graph's edges, scored on held-out edges (jssl/methods/gae.py). VGAE by
default; --config.gae.variational=False gives GAE.

Default (political blogs, 1,490 nodes and 16,715 links; graph-tool collection, Debian):
  python -m jssl.main --config=experiments/configs/gae.py --workdir=runs/vgae_polblogs

Variants (`gae.py:<variant>`):
  polblogs       political blogs, identity features (no attributes), 2 leanings (default)
  football       college football 2000, identity features, 12 conferences
  wordnet_nouns  WordNet 3.0 noun synsets, gloss TF-IDF/SVD features, 26 categories
  toy            a 64-node stochastic block model: the tests' fixture

The paper's settings: a 32-wide ReLU GCN layer, 16-d embeddings, Adam at 1e-2 for 200 epochs
(one step = one pass over the graph, as DGI's config), 5 % / 10 % of the edges held out for
validation / test (`gae.split_seed` fixes which). Any field can be overridden, e.g.
--config.gae.variational=False --config.gae.split_seed=1 --config.num_steps=400
"""

import ml_collections

from jssl import config as jssl_config

VARIANTS = ('polblogs', 'football', 'wordnet_nouns', 'toy')


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  variant = variant or 'polblogs'
  if variant not in VARIANTS:
    raise ValueError(f'unknown variant {variant!r} of gae.py; choose one of: '
                     f'{", ".join(VARIANTS)}')
  config = jssl_config.base_config()
  config.method = 'gae'
  config.gae = ml_collections.ConfigDict({
      'hidden_dims': (32,),  # ReLU GCN layers before the embedding layer (paper: 32)
      'embedding_dim': 16,  # D of mu (and log sigma) (paper: 16)
      'variational': True,  # VGAE (KL to N(0, I), sampled z); False: GAE (z = mu)
      'val_fraction': 0.05,  # of the undirected edges, held out with as many non-edges
      'test_fraction': 0.1,
      'split_seed': 0,  # which edges are held out (the encoder never sees them)
  })
  jssl_config.apply_graph_preset(config, variant, peak_learning_rate=1e-2)  # the paper's Adam
  config.num_steps = 200
  if variant == 'toy':
    config.gae.update(hidden_dims=(16,), embedding_dim=8)
    config.num_steps = 20
  return config
