#!/usr/bin/env bash
# CPC's prediction horizon (van den Oord et al. 2018, Table 3 on LibriSpeech phone
# classification: predicting further ahead helps up to ~12 steps, 2 steps is far worse): the
# number of steps K that W_1..W_K predict, on JapaneseVowels (series of 7-29 steps, so K=8
# already reaches past the shortest), 3 seeds, the default config's 600 steps and its probe of
# the mean context. Each (K, seed) is an ordinary resumable run under
# runs/ablations/cpc_horizon; the table, plot and sweep record go to
# experiments/ablations/cpc_horizon/.
#
#   bash experiments/ablations/cpc_horizon.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
$PY -m jssl.sweep --config=experiments/configs/cpc.py --sweep='cpc.prediction_steps=1,2,4,8' \
  --seeds=3 --config.eval.at_start=False \
  --workdir=runs/ablations/cpc_horizon --results_dir=experiments/ablations/cpc_horizon
