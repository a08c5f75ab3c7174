#!/usr/bin/env bash
# The interleaved measurement of experiments/BENCHMARKS.md, "The matmul convolutions by
# default; what the diagnostics and the probe cost": 3 rounds of five fresh jssl.bench runs.
# Writes <row>_<round>.json beside this script.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=experiments/results/step_parts
PY=${PYTHON:-python}
for round in 1 2 3; do
  for v in "full:" "nodiag:--diagnostics=false" "noprobe:--online_probe=false" \
           "neither:--diagnostics=false --online_probe=false" \
           "nnconv:--config.model.small_cnn_matmul_convs=false"; do
    name=${v%%:*}; args=${v#*:}
    # shellcheck disable=SC2086
    $PY -m jssl.bench --config=experiments/configs/simclr.py:fashion_mnist --augment=false \
        --steps=15 $args --out=$OUT/${name}_$round.json
  done
done
