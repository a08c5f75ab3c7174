#!/usr/bin/env bash
# GAN training stabilisers (Mescheder et al. 2018, R1: "stable training without tuning";
# Miyato et al. 2018, spectral normalisation: "stabilises the discriminator"): the DCGAN of
# experiments/configs/gan.py:digits with a discriminator without BatchNorm (R1 needs each
# output to depend on one example), with and without spectral normalisation and the R1
# penalty (gamma = 10), 3 seeds each, 2000 steps, the Fréchet distance (features of a digits
# classifier) every 500 steps. Each (point, seed) is an ordinary resumable run under
# runs/ablations/gan_stability; the sweep's table and plot go to
# experiments/ablations/gan_stability/, and the Fréchet distance over training is plotted by
# experiments/ablations/gan_stability_plot.py.
#
#   bash experiments/ablations/gan_stability.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
$PY -m jssl.sweep --config=experiments/configs/gan.py:digits \
  --sweep='gan.spectral_norm=False,True' --sweep='gan.r1_weight=0.0,10.0' --seeds=3 \
  --config.gan.discriminator_norm=none --config.eval.every=500 \
  --metrics=frechet_distance,knn_top1,linear_top1 \
  --workdir=runs/ablations/gan_stability --results_dir=experiments/ablations/gan_stability
$PY experiments/ablations/gan_stability_plot.py --workdir=runs/ablations/gan_stability \
  --out=experiments/ablations/gan_stability
