# The README's commands. `make setup` builds .venv once (with the exact tested versions
# of constraints.txt) and again only when pyproject.toml or constraints.txt changes (the
# stamp file), so later calls start at once.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The floor: the oldest torch/torchvision that pyproject.toml allows, everything else as
# constraints.txt pins it, in a second environment (`make test-floor`, run by CI too).
FLOOR_VENV := .venv-floor
FLOOR_PY := $(FLOOR_VENV)/bin/python
FLOOR_STAMP := $(FLOOR_VENV)/.installed
FLOOR_PINS := torch==2.11.0 torchvision==0.26.0

.PHONY: setup demo test test-random test-floor lint format bench bench-peers lock wheel-check

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Train, evaluate and show a detector on generated data (or DATA=path/to/coco_root).
demo: $(STAMP)
	$(PY) tools/demo.py $(if $(DATA),--data $(DATA))

test: $(STAMP)
	$(PY) -m pytest -q

# The suite in a random order across all files (pytest-random-order; the seed is printed,
# `SEED=N` repeats an order): no test may depend on what ran before it.
test-random: $(STAMP)
	$(PY) -m pytest -p random_order --random-order-bucket=global $(if $(SEED),--random-order-seed=$(SEED))

$(FLOOR_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_PY) -m pip install --quiet --upgrade pip
	grep -v -E -i '^(torch|torchvision|triton|nvidia-[a-z0-9-]+|cuda-[a-z-]+)==' constraints.txt > $(FLOOR_VENV)/constraints.txt
	$(FLOOR_PY) -m pip install --quiet -c $(FLOOR_VENV)/constraints.txt $(FLOOR_PINS) -e '.[dev]'
	touch $(FLOOR_STAMP)

test-floor: $(FLOOR_STAMP)
	$(FLOOR_PY) -m pytest -q

# Regenerate constraints.txt from the tested environment: every distribution that
# `make setup` installed, pinned (run after changing pyproject.toml's dependencies).
lock: $(STAMP)
	{ sed -n '1,/^$$/p' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v -i '^detect[-_]tricks'; } > constraints.new
	mv constraints.new constraints.txt
	touch $(STAMP)

# Build the wheel, install it in a fresh venv outside the checkout, and use it there:
# what a user gets from pip, not the editable install the suite runs on. Its
# dependencies are the tested environment's (a second multi-GB PyTorch would not fit
# CI's disk): a .pth adds that site-packages after the venv's own, and .pth files there
# (the editable install's finder) are not run, so the package imported is the wheel's.
wheel-check: $(STAMP)
	rm -rf build/wheel-check && mkdir -p build/wheel-check
	$(PY) -m pip wheel --no-deps --quiet -w build/wheel-check .
	$(PY) -m venv build/wheel-check/venv
	$(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > "$$(build/wheel-check/venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/tested_dependencies.pth"
	build/wheel-check/venv/bin/python -m pip install --quiet --no-deps build/wheel-check/detect_tricks-*.whl
	cd build/wheel-check && venv/bin/python -m detect_tricks --version && venv/bin/detect-tricks --help > /dev/null
	cd build/wheel-check && venv/bin/python $(CURDIR)/tests/wheel_smoke.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Speed benchmarks (by hand, not in CI): each writes benchmarks/results/<name>.{json,md}.
bench: $(STAMP)
	cd benchmarks && ../$(PY) cls_transforms.py
	cd benchmarks && ../$(PY) yolov3_speed.py
	cd benchmarks && ../$(PY) det_loading.py
	cd benchmarks && ../$(PY) loader_workers.py
	cd benchmarks && ../$(PY) step_profile.py --device cpu

# Ours beside ultralytics' YOLOv3u and timm's ResNet-50-D in one process. The peers are
# optional (setup does not install ultralytics): a missing one's rows say so.
bench-peers: $(STAMP)
	cd benchmarks && ../$(PY) peers.py --device cpu --deadline-s 3600
	cd benchmarks && ../$(PY) op_split.py --device cpu
