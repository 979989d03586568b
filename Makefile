# lnserve — every target sets itself up from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: venv run test lint train eval-forecaster image test-container bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch 2.13.0 is a local CPU build in the configured find-links on the project's machines. Probe for it without
	# an index (so a machine without it never downloads a multi-GB CUDA build here), then install it with its deps.
	@if $(PIP) download -q --no-index --no-deps -d $(VENV)/.torch-probe torch==2.13.0 >/dev/null 2>&1; then \
	  echo "installing the local torch==2.13.0 CPU build"; $(PIP) install -q torch==2.13.0; \
	else echo "no local torch==2.13.0; the [train] extra resolves torch"; fi
	rm -rf $(VENV)/.torch-probe
	$(PIP) install -q -e '.[train,dev]'
	# the forecaster's tsibbledata / fpp3 series: tswidgets pins old setuptools and statsmodels it does not need
	$(PIP) install -q --no-deps 'tswidgets>=0.0.2'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/lnserve serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	# promtool and the Prometheus server for the metrics and monitoring tests (Debian package; skipped tests say so
	# where it cannot be installed).
	-scripts/ensure-prometheus.sh
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check service models tests bench scripts
	$(VENV)/bin/ruff format --check service models tests bench scripts
	$(VENV)/bin/mypy
	VENV=$(VENV) scripts/lint-deploy.sh

FORECASTER_TRAIN := --max-epochs 6 --steps-per-epoch 150 --windows-per-series 20 --lr 1e-3 --quiet

IMAGE_TARGET ?= cpu
BASE_IMAGE ?=

# On machines that cannot pull from a registry: make image BASE_IMAGE=local (a debootstrap base, see docs/deployment.md)
image:
	BASE_IMAGE="$(BASE_IMAGE)" scripts/build-image.sh $(IMAGE_TARGET)

test-container:
	scripts/test-container.sh

train: $(STAMP)
	$(VENV)/bin/lnserve train chatbot-data
	$(VENV)/bin/lnserve train chatbot --placement post --name chatbot-post --seed 0
	$(VENV)/bin/lnserve train chatbot --placement pre --name chatbot-pre --seed 0
	$(VENV)/bin/lnserve train chatbot --placement peri --name chatbot-peri --seed 0
	$(VENV)/bin/lnserve export chatbot --select-default
	# the forecaster ensemble: one member per call (seed, lookback), then the export that combines them
	$(VENV)/bin/lnserve train forecaster --name forecaster $(FORECASTER_TRAIN) --seeds 0 --lookbacks 36 --max-epochs 8
	$(VENV)/bin/lnserve train forecaster --name forecaster $(FORECASTER_TRAIN) --seeds 2 --lookbacks 24
	$(VENV)/bin/lnserve export forecaster --name forecaster

# The forecaster on M3 monthly / quarterly, M1 monthly and Tourism monthly through the service runtime, next to
# statsforecast baselines refitted in this run (about 30 min on 2 cores), then the plots of docs/forecaster.md.
eval-forecaster: $(STAMP)
	$(PY) -m models.forecaster.evaluate --recompute-baselines --out docs/forecaster/evaluation.md
	$(PY) -m models.forecaster.plots --out docs/forecaster

bench: $(STAMP)
	@command -v wrk >/dev/null || { echo "make bench needs wrk (apt-get install -y wrk)"; exit 1; }
	$(PY) -m bench.model_latency --threads 0 1
	$(PY) -m bench.http_load
	$(PY) -m bench.stats_overhead

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
