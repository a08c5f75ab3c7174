#!/usr/bin/env bash
# GAE against VGAE (Kipf & Welling 2016, Table 1: on Cora, Citeseer and Pubmed the variational
# model is level with or slightly above the plain one in link AUC / AP, e.g. Cora with
# features 91.0 / 92.0 for GAE against 91.4 / 92.6 for VGAE): the same GCN encoder, decoder,
# held-out edges (split seed 0) and 200 steps, 3 initialisation seeds each, on the
# political-blogs graph (identity features: the paper's featureless setting) and on WordNet's
# noun graph (gloss features). Each (model, seed) is an
# ordinary resumable run under runs/ablations/gae_variational; the table, plot and sweep
# record go to experiments/ablations/gae_variational/.
#
#   bash experiments/ablations/gae_variational.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
$PY -m jssl.sweep --config=experiments/configs/gae.py --sweep='gae.variational=False,True' \
  --seeds=3 --config.eval.at_start=False --metrics=link_auc,link_ap,linear_top1,knn_top1 \
  --workdir=runs/ablations/gae_variational --results_dir=experiments/ablations/gae_variational
# The same comparison on WordNet's noun graph (82,115 synsets with gloss features: the paper's
# setting with features), 3 seeds each.
$PY -m jssl.sweep --config=experiments/configs/gae.py:wordnet_nouns \
  --sweep='gae.variational=False,True' --seeds=3 --config.eval.at_start=False \
  --metrics=link_auc,link_ap,linear_top1,knn_top1 \
  --workdir=runs/ablations/gae_variational_wordnet \
  --results_dir=experiments/ablations/gae_variational_wordnet
