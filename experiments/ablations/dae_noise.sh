#!/usr/bin/env bash
# The denoising autoencoder's noise level (Vincent et al. 2008: destroying a fraction of the
# inputs gives better features than none, up to a point), masking noise on digits, 3 seeds.
# Each (level, seed) is an ordinary resumable run under runs/ablations/dae_noise; the table,
# plot and sweep record go to experiments/ablations/dae_noise/.
#
#   bash experiments/ablations/dae_noise.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
$PY -m jssl.sweep --config=experiments/configs/dae.py --sweep='dae.noise_level=0.0,0.1,0.25,0.5,0.75' \
  --seeds=3 --config.eval.at_start=False \
  --workdir=runs/ablations/dae_noise --results_dir=experiments/ablations/dae_noise
