#!/bin/bash
# Run THERE, on the `device` tool's H200, after benchmarks/device/prepare.sh here:
#   run(command="bash benchmarks/device/session.sh", carry=[".device"], timeout_s=600)
# Everything a GPU session owes the issues, most important first, inside one
# deadline (BUDGET_S, default 540 s, so the call ends before its 600 s limit):
#   0. issue 29: the `gpu`-marked tests (bf16 and fp16 with GradScaler against fp32);
#   1. issue 13 (speed): peers beside ours on CUDA (fp32, bf16), the bf16 step profile,
#      then the detection peers in bf16 with both sides compiled (`--compile`);
#   2. issue 26: the small-data recipe against the baseline at the small configs' own
#      scale on fruit (fruit_small_data_full.yaml, 3 seeds);
#   3. issue 27: helmet's scale curve (baseline, the Bag of Freebies, the recipe at 240,
#      700 and 1,868 photos, 3 seeds) at the small configs' scale (half width, 320 px);
#   4. issue 11 (evidence, settled on CPU): the full-scale ladders' baseline, chosen small
#      recipe and all tricks, 3 seeds, on fruit and raccoon (--jobs 4, 3 loader workers
#      each), in what time is left.
# Results land in $OUT (at most 8 files come back): the ladders' ablation.md and the
# benchmarks' markdown tables, and session.log. A ladder cut by the deadline resumes
# where it stopped at the next call (runs/ stays on the machine while it is warm).
# Rehearsal here, on the CPU, the ladders dry, the tables kept out of the committed ones:
#   PY=.venv/bin/python DEVICE=cpu SKIP_INSTALL=1 LADDER_ARGS=--dry-run BUDGET_S=100 \
#     BENCH_RESULTS=/tmp/device_out/results OUT=/tmp/device_out bash benchmarks/device/session.sh
set -u
BUDGET_S=${BUDGET_S:-540}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
LADDER_ARGS=${LADDER_ARGS:-}
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
exec > >(tee "$OUT/session.log") 2>&1
export PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1
if [ -z "${SKIP_INSTALL:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .device/wheels/*.whl || exit 1
fi
export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
END=$((SECONDS + BUDGET_S))
left() { echo $((END - SECONDS)); }
step() {  # step NAME SECONDS_AT_MOST COMMAND...: skipped when too little time is left
  local name=$1 most=$2; shift 2
  local limit; limit=$(left); [ "$limit" -gt "$most" ] && limit=$most
  if [ "$limit" -lt 20 ]; then echo "== $name: skipped, $(left) s left"; return; fi
  echo "== $name: up to $limit s ($(left) s left)"
  timeout "$limit" "$@"; echo "== $name: rc $? after $((SECONDS - START)) s"
}
START=$SECONDS
touch /tmp/session_start  # only results newer than this are sent back
$PY -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
step "gpu tests" 60 $PY -m pytest -q -p no:cacheprovider -m gpu tests/engine/test_mixed_precision.py \
  tests/yolo/test_loss.py
step peers 150 $PY benchmarks/peers.py --device "$DEVICE" --precision fp32,bf16 --deadline-s 120
step profile 45 $PY benchmarks/step_profile.py --device "$DEVICE" --precision bf16 --steps 3
step "peers compiled" 180 $PY benchmarks/peers.py --device "$DEVICE" --precision bf16 --only det \
  --compile --deadline-s 60
for table in "peers_$DEVICE" "step_profile_$DEVICE" "peers_${DEVICE}_compiled"; do
  path="${BENCH_RESULTS:-benchmarks/results}/$table.md"
  [ "$path" -nt /tmp/session_start ] && cp "$path" "$OUT/"
done
data_of() {  # data_of SET: the --set overrides that point a ladder at .device/data/SET
  echo --set "data.train_ann=.device/data/$1/annotations/instances_train.json" \
    --set "data.train_images=.device/data/$1/images" \
    --set "data.val_ann=.device/data/$1/annotations/instances_val.json" \
    --set "data.val_images=.device/data/$1/images"
}
step "recipe pair" 150 $PY tools/ablate.py configs/ablations/fruit_small_data_full.yaml \
  --jobs 4 --out runs/ablations/fruit_small_data_full_gpu --set train.workers=3 \
  --set model.backbone_weights=.device/backbone.pt --set train.amp=bf16 $(data_of fruit) $LADDER_ARGS
step "scale curve" 200 $PY tools/ablate.py configs/ablations/helmet_scale.yaml --jobs 4 \
  --out runs/ablations/helmet_scale_gpu --set train.workers=3 --set model.width=0.5 \
  --set data.size=320 --set "tricks.random_shape_sizes=[256, 288, 320, 352, 384]" \
  $(data_of helmet) $LADDER_ARGS
for ladder in fruit_small_data_full_gpu helmet_scale_gpu; do
  report="runs/ablations/$ladder/ablation.md"
  [ "$report" -nt /tmp/session_start ] && cp "$report" "$OUT/$ladder.md"
done
ROWS='baseline,+cosine_warmup+no_bias_decay+label_smoothing,all'
for set in fruit raccoon; do
  step "ladder $set" 170 $PY tools/ablate.py "configs/ablations/${set}_bof_full.yaml" \
    --runs "$ROWS" --jobs 4 --out "runs/ablations/${set}_bof_full_gpu" \
    --set train.workers=3 --set model.backbone_weights=.device/backbone.pt \
    --set "data.train_ann=.device/data/$set/annotations/instances_train.json" \
    --set "data.train_images=.device/data/$set/images" \
    --set "data.val_ann=.device/data/$set/annotations/instances_val.json" \
    --set "data.val_images=.device/data/$set/images" $LADDER_ARGS
  report="runs/ablations/${set}_bof_full_gpu/ablation.md"
  [ "$report" -nt /tmp/session_start ] && cp "$report" "$OUT/${set}_bof_full_gpu.md"
done
ls -la "$OUT"
