#!/usr/bin/env bash
# One prepared check for a lent GPU (H100/H200, no internet), under 13 minutes:
#   1. the GPU-marked tests (mixed precision, channels_last, compile, training on CUDA);
#   2. train-step benchmark of ConvNeXt-Base and EfficientNetV2-B0 at 224 px in bf16:
#      images/s, share of the GPU's peak, plain PyTorch loop versus Lightning;
#   3. one real oversampled epoch of `python -m src.train model=convnext` (48,480 images,
#      from the decoded cache, augmentation on the GPU and on the CPU workers) and the
#      original's 13-epoch run projected from it;
#   4. the feature-cache benchmark;
#   5. the original's headline setting end to end with the augmentation bank: frozen
#      ConvNeXt-Base, oversampled, 13 epochs, 8 banked views, embedding extraction included
#      (goal: under 60 s);
#   6. Lightning's fixed cost per step (the head alone) with its profile;
#   7. a small convnext_hyperband study (6 trials, 3 epochs at most), timed whole.
# Results go to $OUT (default outputs/gpu_check): gpu_check.log, gpu_tests.txt and
# <bench>/bench.{json,md} for model, epoch, features, bank, overhead and study.
# Missing Python packages are installed from $WHEELS (default ./wheels) if it exists:
# `pip download` them where there is internet (README, "A GPU machine without internet").
#   GPU_CHECK_DEVICE=cpu bash scripts/gpu_check.sh     # a small dry run on a CPU
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-outputs/gpu_check}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
PY="${PYTHON:-python3}"
WHEELS="${WHEELS:-wheels}"
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
scratch=$(mktemp -d)  # step logs; $OUT keeps only the results (at most 8 files)
log() { echo "[gpu_check $(date +%H:%M:%S)] $*" | tee -a "$OUT/gpu_check.log"; }
step() {  # step SECONDS NAME COMMAND...: run with a time limit, log its tail, note failures
  local limit=$1 name=$2
  shift 2
  log "$name"
  timeout "$limit" "$@" >"$scratch/step.txt" 2>&1
  local rc=$?
  tail -25 "$scratch/step.txt" | tee -a "$OUT/gpu_check.log"
  [ $rc -eq 0 ] || { log "$name FAILED (exit $rc)"; status=1; }
}

if compgen -G "$WHEELS/*.whl" >/dev/null; then
  site=/tmp/gpu_check_site
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$WHEELS"/*.whl \
    2>&1 | tail -3
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" - <<'PY' 2>&1 | tee -a "$OUT/gpu_check.log"
import hydra, open_clip, optuna, pytorch_lightning, timm, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "timm", timm.__version__,
      "lightning", pytorch_lightning.__version__, "hydra", hydra.__version__,
      "optuna", optuna.__version__, "open_clip", open_clip.__version__)
print("device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA")
PY
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>/dev/null \
  | tee -a "$OUT/gpu_check.log"

status=0
export RARE_SPECIES_CACHE="${RARE_SPECIES_CACHE:-/tmp/gpu_check_cache}"
if [ "$DEVICE" = cuda ]; then
  MODEL=(--image-size 224 --batch-size 128 --steps 20 --precision bf16-mixed --channels-last
    --freeze all none)
  EPOCH=(--image-size 224 --batch-size 128 --model convnext --overrides model.channels_last=true)
  FEATURES=(--images 2048 --batch-size 256 --image-size 224 --backbone convnext_base)
  FULL="data=rarespecies data.root=$RARE_SPECIES_CACHE/$("$PY" -c "from src.data.synthetic \
import synthetic_dir_name as n; print(n('full', 0, [224, 288]))")"  # the epoch bench's images
  BANK=(--backbone convnext_base --image-size 224 --batch-size 256 --epochs 13 --views 8
    --overrides $FULL data.cache=true data.num_workers=14 model.channels_last=true)
  OVERHEAD=(--backbone tf_efficientnetv2_b0 --batch-size 128 --steps 500)
  STUDY=(--overrides hparams_search=convnext_hyperband $FULL data.cache=true
    data.num_workers=14 data.batch_size=128 pretrained=false trainer=gpu logger=none
    trainer.enable_progress_bar=false hparams_search.n_trials=6
    hparams_search.pruner.max_resource=3)
  # the epoch bench's 11,983 synthetic images are written on the CPUs meanwhile
  "$PY" -c "from src.benchmarks.epoch import full_synthetic_root as f; print(f())" \
    >"$scratch/synthetic.txt" 2>&1 &
  writer=$!
  step 180 "GPU-marked tests" "$PY" -m pytest -m gpu -q -p no:cacheprovider \
    --continue-on-collection-errors tests/
  cp "$scratch/step.txt" "$OUT/gpu_tests.txt"
  log "waiting for the synthetic images"
  wait $writer || { log "writing the synthetic images FAILED"; status=1; }
  tail -2 "$scratch/synthetic.txt" | tee -a "$OUT/gpu_check.log"
else
  MODEL=(--image-size 64 --batch-size 16 --steps 3 --backbones resnet18)
  EPOCH=(--image-size 64 --batch-size 16 --model timm --overrides model.net.backbone=resnet18)
  EPOCH+=(--root "$("$PY" -c "from src.data.synthetic import ensure_synthetic as e
print(e('$RARE_SPECIES_CACHE/gpu_check_dry_run', 'tiny', sizes=(120, 160)))")")
  FEATURES=(--images 64 --batch-size 16 --image-size 64 --backbone resnet18)
  BANK=(--backbone resnet18 --image-size 32 --epochs 2 --views 0 2 --overrides debug=tiny)
  OVERHEAD=(--backbone resnet18 --batch-size 16 --steps 200)
  STUDY=(--overrides hparams_search=baseline_hyperband debug=tiny logger=none
    hparams_search.n_trials=3 hparams_search.pruner.max_resource=2)
fi
step 120 "train-step benchmark" "$PY" -m src.bench model --device "$DEVICE" "${MODEL[@]}" \
  --out "$OUT/model"
step 200 "one real epoch (python -m src.train)" "$PY" -m src.bench epoch --device "$DEVICE" \
  "${EPOCH[@]}" --out "$OUT/epoch"
step 60 "feature-cache benchmark" "$PY" -m src.bench features --device "$DEVICE" \
  "${FEATURES[@]}" --out "$OUT/features"
step 150 "augmentation bank, the headline setting end to end" "$PY" -m src.bench bank \
  --device "$DEVICE" "${BANK[@]}" --out "$OUT/bank"
step 60 "Lightning's fixed cost per step" "$PY" -m src.bench overhead --device "$DEVICE" \
  "${OVERHEAD[@]}" --out "$OUT/overhead"
step 300 "a small Hyperband study, timed whole" "$PY" -m src.bench study --device "$DEVICE" \
  "${STUDY[@]}" --out "$OUT/study"
rm -rf "$scratch"
log "done (status $status); results in $OUT"
exit $status
