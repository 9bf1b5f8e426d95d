# Set-up and the two entry points of the README: `make demo` and `make test`.
# torch is installed first from the pinned CPU wheel (an unpinned install would pull CUDA builds).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PIN ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup data browser demo test lint bench clean help

help:
	@echo "make demo   - set up and run the main job (simplebits demo)"
	@echo "make test   - set up, lint (ruff) and run the test suite"
	@echo "make bench  - run the benchmarks (prints JSON)"

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q $(TORCH_PIN)
	$(BIN)/python -m pip install -q -e ".[test]"
	@touch $(STAMP)

setup: $(STAMP) data browser

# Real Fashion-MNIST from Debian when apt is usable; otherwise say so (the demo falls back to mnist-5k).
data:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then \
	  echo "Fashion-MNIST: found in /usr/share/datasets/fashion-mnist"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
	    && echo "Fashion-MNIST: installed (Debian dataset-fashion-mnist)" \
	    || echo "Fashion-MNIST: apt-get install dataset-fashion-mnist failed; demo will use mnist-5k"; \
	else \
	  echo "Fashion-MNIST: apt-get not available (or not root); install dataset-fashion-mnist or pass --data-root; demo will use mnist-5k"; \
	fi

# Debian's Chromium for the report's rendering test (tests/test_pipeline.py); skipped there when absent.
browser:
	@if command -v chromium >/dev/null 2>&1; then \
	  echo "Chromium: found ($$(command -v chromium))"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	    && echo "Chromium: installed (Debian chromium)" \
	    || echo "Chromium: apt-get install chromium failed; the report's browser test will be skipped"; \
	else \
	  echo "Chromium: not installed and apt-get not usable; the report's browser test will be skipped"; \
	fi

demo: setup
	$(BIN)/simplebits demo

lint: setup
	$(BIN)/ruff check src tests benchmarks examples

# two pytest workers of one torch thread each: 1.37x faster than one process on two threads on a
# 2-core machine (442 -> 322 s, docs/architecture.md); TEST_WORKERS=0 runs in one process
TEST_WORKERS ?= 2
test: setup lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS)

bench: setup
	$(BIN)/python benchmarks/convnet_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache build dist src/*.egg-info
