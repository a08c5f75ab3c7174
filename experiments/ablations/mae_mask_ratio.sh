#!/usr/bin/env bash
# The masked autoencoder's masking ratio (He et al. 2022, their Fig. 5: ~75 % is best for both
# linear probing and fine-tuning, and much higher than BERT's 15 %), on digits (16 patches of
# 2x2 pixels), 3 seeds, linear / kNN probes and fine-tuning. With 16 patches the ratios keep
# round((1 - r) * 16) = 12, 8, 4 and 2 patches (realised ratios 0.25, 0.5, 0.75, 0.875).
# NUM_STEPS (default 1000) shortens every run so the sweep fits ~25 min on 2 CPU cores.
# Each (ratio, seed) is an ordinary resumable run under runs/ablations/mae_mask_ratio; the
# table, plot and sweep record go to experiments/ablations/mae_mask_ratio/.
#
#   bash experiments/ablations/mae_mask_ratio.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
$PY -m jssl.sweep --config=experiments/configs/mae.py --sweep='mae.mask_ratio=0.25,0.5,0.75,0.9' \
  --seeds=3 --config.eval.at_start=False --config.num_steps="${NUM_STEPS:-1000}" \
  --config.eval.finetune="('finetune',)" \
  --metrics=knn_top1,linear_top1,finetune_top1,reconstruction_mse \
  --workdir=runs/ablations/mae_mask_ratio --results_dir=experiments/ablations/mae_mask_ratio
