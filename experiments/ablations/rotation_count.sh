#!/usr/bin/env bash
# RotNet's number of rotations (Gidaris et al. 2018, Table 2 on CIFAR-10: 4 rotations beat 2
# and 8): 0/180, multiples of 90 and multiples of 45 degrees on digits, 3 seeds, at the
# ablation budget of experiments/ablations/README.md (20 epochs, 8x8, a 16-32-64 CNN). Each
# (count, seed) is an ordinary resumable run under runs/ablations/rotation_count; the table,
# plot and sweep record go to experiments/ablations/rotation_count/.
#
#   bash experiments/ablations/rotation_count.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
$PY -m jssl.sweep --config=experiments/configs/rotation.py --sweep='rotation.num_rotations=2,4,8' \
  --seeds=3 --config.num_epochs=20 --config.dataset.image_size=8 \
  '--config.model.widths=(16,32,64)' --config.eval.at_start=False \
  --workdir=runs/ablations/rotation_count --results_dir=experiments/ablations/rotation_count
