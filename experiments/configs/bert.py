"""BERT (Devlin et al. 2019): masked LM + next-sentence prediction, BERT-tiny on Austen + WordNet.

Default (austen_wordnet corpus, probes on WordNet gloss categories; 26 minutes on 2 busy CPU
cores: 16 of training, 1500 steps at ~0.6 s, and ~4 for each of the two evaluations, whose
probes encode all 117k glosses):
  python -m jssl.main --config=experiments/configs/bert.py --workdir=runs/bert_default

Variants (`bert.py:<variant>`):
  fortunes  the same pre-training, probes on the fortune categories
  mlm_only  masked LM alone (config.bert.nsp=False: single segments [CLS] A [SEP], no NSP)
Any field can be overridden: --config.num_steps=2000 --config.bert.mask_rate=0.2

The model is BERT-tiny (Turc et al. 2019: 2 layers, width 128, 2 heads, MLP 512, post-LN as
BERT), in `config.model` fields of their own (num_layers, hidden_dim, num_heads, mlp_dim,
dropout_rate, max_length = the position table, pre_ln); the image fields of base_config
(encoder, widths, projection_*) are left as they are and not read. Segments are
`dataset.max_length` = 64 WordPiece tokens of an 8192-id vocabulary trained on the corpus's
training split, so a pair is 2 * 64 + 3 = 131 positions.
"""

import ml_collections

from jssl import config as jssl_config

SEGMENT_LENGTH = 64


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  config = jssl_config.base_config()
  config.method = 'bert'
  config.bert = ml_collections.ConfigDict({
      'mask_rate': 0.15,
      'nsp': True,
      'nsp_weight': 1.0,
      # MLM slots per sequence (BERT's max_predictions_per_seq): the head runs on these
      # positions only. 0.15 x 128 content tokens = 19.2 selected on average (std 4.0); 32
      # slots lose a selected token in ~0.1 % of the pairs (see jssl/methods/bert.py).
      'max_predictions': 32,
      'eval_examples': 4096,  # held-out windows for mlm_perplexity
  })

  config.dataset.name = 'austen_wordnet'
  config.dataset.vocab_size = 8192
  config.dataset.max_length = SEGMENT_LENGTH

  config.model.num_layers = 2
  config.model.hidden_dim = 128
  config.model.num_heads = 2
  config.model.mlp_dim = 512
  config.model.dropout_rate = 0.1
  config.model.max_length = 2 * SEGMENT_LENGTH + 3
  config.model.pre_ln = False

  # Measured on 2 shared CPU cores: ~0.4 s a step at batch 32, ~0.85 s at 64, ~2.9 s at 128
  # (sequences/s are flat), so small batches buy the most updates. A short run needs a higher
  # rate than BERT's 1e-4: at a peak of 1e-3 (batch 64) the masked LM was still at the
  # unigram plateau after 200 steps; at 2e-3 (batch 32) it had left it by step 250.
  config.batch_size = 32
  config.num_steps = 1500
  config.optimizer.name = 'adamw'
  config.optimizer.base_learning_rate = 0.016  # x batch/256: a peak of 2e-3 at batch 32
  config.optimizer.weight_decay = 0.01  # BERT's; kernels only
  config.optimizer.warmup_steps = 100
  config.optimizer.grad_clip_norm = 1.0  # as BERT's reference code
  config.log_every = 10
  config.checkpoint_every = 500

  config.eval.dataset = 'wordnet_glosses'
  config.eval.batch_size = 256

  if variant in (None, ''):
    pass
  elif variant == 'fortunes':
    config.eval.dataset = 'fortunes'
  elif variant == 'mlm_only':
    config.bert.nsp = False
    config.bert.max_predictions = 20  # 0.15 x 64 = 9.6 selected on average
    config.model.max_length = SEGMENT_LENGTH + 2
  else:
    raise ValueError(f'unknown variant {variant!r} of bert.py; choose one of: (default), '
                     'fortunes, mlm_only')
  return config
