# deepclust: `make run` starts the whole service on the embedded default; `make test` runs the
# tests; `make lint` runs ruff.
# The virtual environment is cached outside the checkout, keyed by requirements.txt's hash,
# so a fresh clone (or a CI run) reuses it instead of reinstalling torch.
PYTHON ?= python3
REQ_HASH := $(shell sha256sum requirements.txt | cut -c1-12)
VENV ?= $(HOME)/.cache/deepclust/venv-$(REQ_HASH)
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: install run test lint services bench-baselines peer-env gpu-bundle clean

install: $(VENV)/.complete
	@$(PY) -m pip install -q --no-deps --no-build-isolation -e . >/dev/null
	@ln -sfn $(VENV) .venv

$(VENV)/.complete:  # the path carries the hash of requirements.txt: a change builds a new one
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

run: install
	PORT=$(PORT) $(PY) -m api.serve

services:
	@bash .ci/services

test: install services
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install  # ruff's settings are in pyproject.toml
	$(PY) -m ruff check .

bench-baselines: install
	$(PY) bench/baselines.py

# ClustPy (the peer library) in its own folder, on PYTHONPATH only for bench/peer_clustpy.py,
# so the project's pinned environment stays as requirements.txt says.
PEER_DIR := $(VENV)-clustpy
peer-env: install
	test -d $(PEER_DIR)/clustpy || $(PY) -m pip install -q --no-deps --no-build-isolation --target $(PEER_DIR) \
		clustpy==0.0.3 tqdm==4.70.1 matplotlib==3.11.2 pyparsing==3.3.3 cycler==0.12.1 kiwisolver==1.5.1 fonttools==4.68.0
	@echo "run: PYTHONPATH=$(PEER_DIR) $(PY) bench/peer_clustpy.py"

# What bench/gpu_check.sh needs on the lent GPU machine beyond its image (Python 3.12 with
# torch, numpy, scikit-learn, numba, matplotlib, pytest; no network): wheels of the packages
# core/ imports that the image lacks, ClustPy's Python source (its C dip module is optional and
# unused by DCN) and the benchmark data. Carry it: device run with carry [".gpu"].
GPU_WHEELS := pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 \
	typing-inspection==0.4.5 typing-extensions==4.16.0 umap-learn==0.5.12 pynndescent==0.7.0
gpu-bundle: peer-env
	rm -rf .gpu && mkdir -p .gpu/whl .gpu/site .gpu/data
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .gpu/whl $(GPU_WHEELS)
	cp -r $(PEER_DIR)/clustpy .gpu/site/ && rm -rf .gpu/site/clustpy/data/datasets
	find .gpu/site \( -name '*.so' -o -name __pycache__ \) -prune -exec rm -rf {} +
	cp $${DEEPCLUST_DATA:-../shared/data}/mnist.npz $${DEEPCLUST_DATA:-../shared/data}/usps.npz \
		.gpu/data/
	@du -sh .gpu

clean:
	rm -rf var .venv .pytest_cache
