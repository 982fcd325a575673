"""What a user of the built wheel gets (`make wheel-check`, run by CI in a fresh venv
outside the checkout): the package from the wheel, its type marker, its version, the
command's help, and one prediction. Not a pytest module: a script that fails loudly."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import numpy as np

import detect_tricks
from detect_tricks.core.config import DetModelConfig
from detect_tricks.inference.detector import Detector
from detect_tricks.models import build_detector

package = Path(detect_tricks.__file__).parent
assert Path(sys.prefix) in package.parents, f"imported {package}, not the wheel's copy"
assert (package / "py.typed").is_file(), "py.typed is missing from the wheel"
assert importlib.metadata.version("detect_tricks") == detect_tricks.__version__
assert importlib.metadata.metadata("detect_tricks")["License-Expression"] == "Apache-2.0"
model = build_detector(DetModelConfig(arch="yolov3_resnet18_d", width=0.125, num_classes=2))
detector = Detector(model, ["a", "b"], [1, 2], size=64)
image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
(found,) = detector.predict(image)
assert set(found) >= {"boxes", "scores", "labels"} and found["boxes"].shape[1:] == (4,)
print(f"wheel check: detect_tricks {detect_tricks.__version__} from {package}: ok")
