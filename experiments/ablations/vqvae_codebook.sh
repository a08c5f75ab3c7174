#!/usr/bin/env bash
# VQ-VAE's codebook size K on digits (stage one, EMA codebook with dead-code restarts), 3 seeds:
# reconstruction NLL, the bound under a uniform prior over codes, codebook usage, probes.
# Each (K, seed) is an ordinary resumable run under runs/ablations/vqvae_codebook; the table,
# plot and sweep record go to experiments/ablations/vqvae_codebook/.
#
#   bash experiments/ablations/vqvae_codebook.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
$PY -m jssl.sweep --config=experiments/configs/vqvae.py --sweep='vqvae.num_codes=4,8,16,64' \
  --seeds=3 --config.eval.at_start=False \
  --metrics=reconstruction_nll,bits_per_dim_uniform_prior,test_codebook_perplexity,test_codes_used,knn_top1,linear_top1 \
  --workdir=runs/ablations/vqvae_codebook --results_dir=experiments/ablations/vqvae_codebook
