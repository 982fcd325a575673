#!/bin/bash
# Run HERE (not on the GPU machine), from the repository root, before a session with the
# `device` tool's H200: fills .device/ (ignored by git, carried with `carry: [".device"]`)
# with what the GPU machine lacks. ../shared does not travel and the carry limit is
# 64 MiB, so the photos are shrunk to the 854 px that training at 256 px can use
# (tools/shrink_coco.py: the same pixels the loader would make of them).
#
#   bash benchmarks/device/prepare.sh && du -sh .device
set -euo pipefail
SHARED=${SHARED:-../shared/data}
PY=${PY:-.venv/bin/python}
BACKBONE=${BACKBONE:-runs/resnet18_d_flowers5_tricks/checkpoints/best.pt}
rm -rf .device/data && mkdir -p .device/data .device/wheels
[ -f "$BACKBONE" ] || { echo "no $BACKBONE: python tools/train_cls.py --config configs/cls/resnet18_d_flowers5_tricks.yaml"; exit 1; }
for set in fruit raccoon; do
  for split in train val; do
    $PY tools/shrink_coco.py --ann "$SHARED/$set/annotations/instances_$split.json" \
      --image-dir "$SHARED/$set/images" --out ".device/data/$set" --max-side 854 --jpeg-quality 90
  done
done
# helmet (75 MB) for the scale curve at the small configs' scale: 512 px at quality 80
# keeps it inside the carry limit (its photos are 640 px; 320 px training crops use less)
for split in train val; do
  $PY tools/shrink_coco.py --ann "$SHARED/helmet/annotations/instances_$split.json" \
    --image-dir "$SHARED/helmet/images" --out .device/data/helmet --max-side 512 --jpeg-quality 80
done
# the backbone's evaluated weights alone (the checkpoint also holds optimizer state)
$PY - "$BACKBONE" <<'PYEOF'
import sys, torch
from detect_tricks.models.weights import read_state_dict
torch.save(read_state_dict(sys.argv[1]), ".device/backbone.pt")
PYEOF
# packages the GPU machine's image does not have (Python 3.12 there), at the versions of
# constraints.txt and of the CPU environment the suite passes with
rm -f .device/wheels/*.whl
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .device/wheels pycocotools==2.0.11 albumentations==2.0.8 albucore==0.0.24 \
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
  stringzilla==5.3.2 simsimd==6.5.16 ultralytics==8.4.190 \
  pytest==9.2.0 iniconfig==2.3.1 pluggy==1.7.0 2>&1 | grep -v "^WARNING: Location" || true
du -sh .device .device/*
