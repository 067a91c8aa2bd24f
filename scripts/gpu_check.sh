#!/usr/bin/env bash
# One prepared check for a lent GPU (H100/H200, no internet): GPU-marked tests, then the
# train-step benchmark of ConvNeXt-Base and EfficientNetV2-B0 at 224 px in bf16 (images/s,
# share of the GPU's peak, projected time of the original's 13-epoch ConvNeXt run on
# 48,480 images) and the feature-cache benchmark. Under 8 minutes. Results go to $OUT
# (default outputs/gpu_check). Missing Python packages are installed from ./wheels if
# that folder exists (pip download them where there is internet).
#   GPU_CHECK_DEVICE=cpu bash scripts/gpu_check.sh     # a dry run of the script on a CPU
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-outputs/gpu_check}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
mkdir -p "$OUT"
log() { echo "[gpu_check $(date +%H:%M:%S)] $*" | tee -a "$OUT/gpu_check.log"; }

if [ -d wheels ]; then
  pip install --quiet --no-index --find-links wheels wheels/*.whl 2>&1 | tail -2
fi
python - <<'PY' 2>&1 | tee -a "$OUT/gpu_check.log"
import torch, timm, pytorch_lightning, optuna, open_clip
print("torch", torch.__version__, "cuda", torch.version.cuda, "timm", timm.__version__,
      "lightning", pytorch_lightning.__version__)
print("device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA")
PY
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>/dev/null | tee -a "$OUT/gpu_check.log"

status=0
if [ "$DEVICE" = cuda ]; then
  log "GPU-marked tests"
  timeout 180 python -m pytest -m gpu -q -p no:cacheprovider tests/ 2>&1 | tail -15 | tee "$OUT/gpu_tests.txt" || status=1
  BENCH=(--image-size 224 --batch-size 128 --steps 30 --precision bf16-mixed --channels-last)
  FEATURES=(--images 4096 --batch-size 256 --image-size 224)
else
  BENCH=(--image-size 64 --batch-size 16 --steps 3 --backbones resnet18)
  FEATURES=(--images 64 --batch-size 16 --image-size 64)
  FEATURE_BACKBONE="${FEATURE_BACKBONE:-resnet18}"
fi
log "train-step benchmark"
timeout 240 python -m src.bench model --device "$DEVICE" "${BENCH[@]}" --out "$OUT/model" \
  2>&1 | tail -12 | tee -a "$OUT/gpu_check.log" || status=1
log "feature-cache benchmark"
timeout 120 python -m src.bench features --device "$DEVICE" "${FEATURES[@]}" \
  --backbone "${FEATURE_BACKBONE:-convnext_base.fb_in22k_ft_in1k}" --out "$OUT/features" \
  2>&1 | tail -8 | tee -a "$OUT/gpu_check.log" || status=1
log "done (status $status); results in $OUT"
exit $status
