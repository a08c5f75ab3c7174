#!/usr/bin/env bash
# The GPU benchmark, prepared to run as one script within 15 minutes of a lent GPU
# (experiments/BENCHMARKS.md, "GPU"). Offline: ImageNet cannot be downloaded, so the step
# benchmark reads batches of jssl_jpeg224 (random 224x224 crops of two photographs, built
# here by experiments/jpeg_dataset.py); jssl.bench transfers its batches to the device before
# timing, so the step time does not depend on what the images show.
#
#   bash experiments/gpu_benchmark.sh OUT_DIR       (OUT_DIR: where the JSON results go)
#
# 1. SimCLR and BYOL, ResNet-50, 224x224, bfloat16: the largest batch of BATCHES that compiles
#    and runs (tried from the largest down; an out-of-memory failure moves to the next).
# 2. BERT-base-sized masked LM + NSP (12 layers, width 768, 12 heads, MLP 3072, pairs of 2 x 64
#    tokens = 131 positions, the corpus's 8192-id WordPiece vocabulary) in bfloat16.
# 3. The input pipeline alone (--data_only) on this host's cores, 0/1/2/4/8 workers, and
#    the cores needed to feed 8 GPUs at the rate step 1 measured.
# Each command's stdout/stderr is kept in OUT_DIR/*.log. Environment overrides (for a dry run on
# a CPU: BATCHES=8 STEPS=1 NUM_IMAGES=300 BERT_BATCH=8 BERT_LAYERS=1 DATA_WORKERS=0,1):
# PYTHON, JSSL_BENCH_DATA, BATCHES, STEPS, NUM_IMAGES, BERT_BATCH, BERT_LAYERS, DATA_WORKERS.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: bash experiments/gpu_benchmark.sh OUT_DIR}"
mkdir -p "$OUT"
PY="${PYTHON:-.venv/bin/python}"
DATA="${JSSL_BENCH_DATA:-$OUT/tfds}"
BATCHES="${BATCHES:-2048 1024 512 256}"
STEPS="${STEPS:-20}"
NUM_IMAGES="${NUM_IMAGES:-8192}"
BERT_BATCH="${BERT_BATCH:-256}"
BERT_LAYERS="${BERT_LAYERS:-12}"
DATA_WORKERS="${DATA_WORKERS:-0,1,2,4,8}"
START=$(date +%s)
stamp() { echo "[$(( $(date +%s) - START )) s] $*"; }

"$PY" -c 'import jax; print(jax.devices()); print(jax.__version__)' | tee "$OUT/devices.log"
stamp "building jssl_jpeg224"
"$PY" experiments/jpeg_dataset.py --data_dir="$DATA" "--num_images=$NUM_IMAGES" > "$OUT/dataset.log" 2>&1 \
  || { stamp "dataset build failed"; tail -20 "$OUT/dataset.log"; exit 1; }

IMAGES=(--config.dataset.name=tfds:jssl_jpeg224 "--config.dataset.data_dir=$DATA"
        --config.dataset.image_size=224 --config.dataset.stored_size=256
        --config.model.encoder=resnet50 --config.model.stem=imagenet
        --config.model.dtype=bfloat16 "--steps=$STEPS" --warmup=3)
declare -A CONFIG=(
  [simclr]="experiments/configs/simclr.py:imagenet2012"
  # BYOL has no ImageNet variant: its CIFAR-10 one (LARS, 4096-256 projector and predictor)
  # moved to ImageNet's image size, ResNet-50 and BYOL's augmentations.
  [byol]="experiments/configs/byol.py:cifar10"
)
declare -A EXTRA=([simclr]="" [byol]="--config.augment.preset=byol")
for method in simclr byol; do
  for batch in $BATCHES; do
    stamp "$method batch $batch"
    if "$PY" -m jssl.bench "--config=${CONFIG[$method]}" "${IMAGES[@]}" ${EXTRA[$method]} \
         "--config.batch_size=$batch" "--out=$OUT/${method}_r50_bf16_b$batch.json" \
         > "$OUT/${method}_b$batch.log" 2>&1; then
      tail -9 "$OUT/${method}_b$batch.log"
      break
    fi
    stamp "$method batch $batch failed: $(grep -m1 -io 'resource_exhausted\|out of memory' "$OUT/${method}_b$batch.log" || tail -1 "$OUT/${method}_b$batch.log")"
  done
done

stamp "BERT-base MLM"
"$PY" -m jssl.bench --config=experiments/configs/bert.py "--config.model.num_layers=$BERT_LAYERS" \
  --config.model.hidden_dim=768 --config.model.num_heads=12 --config.model.mlp_dim=3072 \
  --config.model.dtype=bfloat16 "--config.batch_size=$BERT_BATCH" "--steps=$STEPS" --warmup=3 \
  "--out=$OUT/bert_base_bf16_b$BERT_BATCH.json" > "$OUT/bert.log" 2>&1
tail -9 "$OUT/bert.log"

# The host side: the cores needed to feed 8 GPUs at the SimCLR step rate measured above.
RATE=$("$PY" - "$OUT" <<'PYEOF'
import glob, json, sys
rates = [json.load(open(p))['images_per_s'] for p in glob.glob(sys.argv[1] + '/simclr_r50_*.json')]
print(max(rates) if rates else 3000.0)
PYEOF
)
stamp "input pipeline at $RATE images/s per GPU"
"$PY" -m jssl.bench --data_only --config=experiments/configs/simclr.py:imagenet2012 \
  --config.dataset.name=tfds:jssl_jpeg224 "--config.dataset.data_dir=$DATA" \
  --config.dataset.stored_size=256 --config.batch_size=256 "--data_workers=$DATA_WORKERS" \
  --data_batches=20 "--images_per_s_per_gpu=$RATE" "--out=$OUT/data_only.json" \
  > "$OUT/data_only.log" 2>&1
tail -8 "$OUT/data_only.log"
stamp done
