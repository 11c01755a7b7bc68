# deepclust: `make run` starts the whole service on the embedded default; `make test` runs the
# tests; `make lint` runs ruff.
# The virtual environment is cached outside the checkout, keyed by requirements.txt's hash,
# so a fresh clone (or a CI run) reuses it instead of reinstalling torch.
PYTHON ?= python3
REQ_HASH := $(shell sha256sum requirements.txt | cut -c1-12)
VENV ?= $(HOME)/.cache/deepclust/venv-$(REQ_HASH)
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: install run test lint services bench-baselines peer-env clean

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

clean:
	rm -rf var .venv .pytest_cache
