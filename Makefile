# Two commands on a fresh Debian machine with Python 3.11:
#   make demo   # set up, then train the default config (Fashion-MNIST) on this machine
#   make test   # set up, then run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
FASHION := /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup setup-test data demo test test-fast test-all zoo-table bench

# The pinned versions (requirements.txt), and the package itself in editable mode
# (pyproject.toml), so `cnn_jax` and `configs` import from any directory.
$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt -e .
	touch $@

setup: $(VENV)/.installed

# Test-only requirements (torch and torchvision for the converter tests).
$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(VENV)/bin/pip install -q -r requirements-test.txt
	touch $@

setup-test: $(VENV)/.installed-test

# Fashion-MNIST's real files from Debian, for machines without internet; with internet
# (or where apt-get is missing) TFDS downloads the data itself.
data:
	@if [ ! -f $(FASHION) ] && command -v apt-get >/dev/null; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; fi

demo: setup data
	$(PY) -m cnn_jax.main --config=configs/fashion_mnist.py --workdir=workdirs/fashion_mnist

test: setup-test data
	$(PY) -m pytest -n 2 --dist loadgroup --durations=15 -q -m "not full_size"

test-fast: setup-test data
	$(PY) -m pytest -n 2 --dist loadgroup -q -m "not slow"

test-all: setup-test data
	$(PY) -m pytest -n 2 --dist loadgroup --durations=15 -q

zoo-table: setup
	$(PY) -m cnn_jax.models.summary

# The README's table of train / inference ratios against PyTorch (resnet50, mobilenet_v2,
# efficientnet_b0, densenet121 at batch 8, 224 px), measured on this machine (~30 min on
# 2 cores).
bench: setup-test
	$(PY) -m cnn_jax.benchmark.table --readme README.md
