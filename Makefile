# lnserve — every target sets itself up from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: venv run test lint train chatbot-report eval-chatbot-http eval-forecaster image test-container bench bench-peers bench-peers-quick \
	bench-peers-chart screenshots gpu-prepare clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch 2.13.0 is a local CPU build in the configured find-links on the project's machines. Probe for it without
	# an index (so a machine without it never downloads a multi-GB CUDA build here), then install it with its deps.
	@if $(PIP) download -q --no-index --no-deps -d $(VENV)/.torch-probe torch==2.13.0 >/dev/null 2>&1; then \
	  echo "installing the local torch==2.13.0 CPU build"; $(PIP) install -q torch==2.13.0; \
	else echo "no local torch==2.13.0; the [train] extra resolves torch"; fi
	rm -rf $(VENV)/.torch-probe
	$(PIP) install -q -e '.[train,dev,gpu]'
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
	# Debian's chromium for the inspector's browser tests (driven by Playwright from the [dev] extra).
	-scripts/ensure-chromium.sh
	# wrk for the benchmark harness's smoke test (Debian package).
	-scripts/ensure-wrk.sh
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
	# the chatbot zoo: one network, five norm placements / types / residual steps, one recipe (docs/chatbot.md)
	for v in chatbot-post chatbot-pre chatbot-peri chatbot-peri-dt0.1 chatbot-pre-rms; do \
		$(VENV)/bin/lnserve train chatbot --variant $$v --seed 0 || exit 1; done
	$(VENV)/bin/lnserve export chatbot --select-default
	$(MAKE) chatbot-report
	# the forecaster ensemble: one member per call (seed, lookback), then the export that combines them
	$(VENV)/bin/lnserve train forecaster --name forecaster $(FORECASTER_TRAIN) --seeds 0 --lookbacks 36 --max-epochs 8
	$(VENV)/bin/lnserve train forecaster --name forecaster $(FORECASTER_TRAIN) --seeds 2 --lookbacks 24
	$(VENV)/bin/lnserve export forecaster --name forecaster

# The chatbot training report's pictures (docs/chatbot/*.png) from the committed sidecars.
chatbot-report: $(STAMP)
	$(PY) -m models.chatbot.report --out docs/chatbot

# The zoo and the TF-IDF baseline on the field set, each message posted to a real server (about 1 min).
eval-chatbot-http: $(STAMP)
	$(PY) -m models.chatbot.http_eval --data models/chatbot/data/field.jsonl --out docs/chatbot/field.json

# The forecaster on M3 monthly / quarterly, M1 monthly and Tourism monthly through the service runtime, next to
# statsforecast baselines refitted in this run (about 30 min on 2 cores), then on the other official splits of the
# same packages (about 4 min), then the plots of docs/forecaster.md.
eval-forecaster: $(STAMP)
	$(PY) -m models.forecaster.evaluate --recompute-baselines --out docs/forecaster/evaluation.md
	$(PY) -m models.forecaster.evaluate --recompute-baselines --n-jobs 2 --out docs/forecaster/other-sets.md \
	    --sets m3_yearly m3_other m1_quarterly m1_yearly tourism_quarterly tourism_yearly
	$(PY) -m models.forecaster.plots --out docs/forecaster

bench: $(STAMP)
	scripts/ensure-wrk.sh
	$(PY) -m bench.model_latency --threads 0 1
	$(PY) -m bench.graph_cost
	$(PY) -m bench.http_load
	$(PY) -m bench.stats_overhead
	$(PY) -m bench.drift_demo

# The peer benchmark (bench/peers/README.md): lnserve, a hand-written FastAPI endpoint and the no-op ceiling from
# $(VENV); PyTriton, MLServer, BentoML, LitServe and Ray Serve each from its own virtual environment under
# $(PEERS_DIR) (git-ignored, rebuilt when its requirements file changes; ~10 minutes the first time). A run takes
# about 15 minutes on 2 cores; BENCH_PEERS_ARGS adds options (e.g. --rounds 2 --concurrency 1 64).
PEERS_DIR ?= .peers
PEERS := pytriton mlserver bentoml litserve rayserve
PEERS_OUT ?= bench/peers/results
PEER_VENVS := $(foreach p,$(PEERS),$(PEERS_DIR)/$(p)/.installed)

$(PEERS_DIR)/%/.installed: bench/peers/requirements/%.txt
	rm -rf $(PEERS_DIR)/$*
	$(PYTHON) -m venv $(PEERS_DIR)/$*
	$(PEERS_DIR)/$*/bin/python -m pip install -q -r $<
	touch $@

bench-peers: $(STAMP) $(PEER_VENVS)
	scripts/ensure-wrk.sh
	$(PY) -m bench.peers --peers-dir $(PEERS_DIR) --out $(PEERS_OUT) $(BENCH_PEERS_ARGS)
	$(MAKE) bench-peers-chart

# A smoke run of every server: 1 round, c = 1 and 16, 2 s per point (about 3 minutes).
bench-peers-quick: $(STAMP) $(PEER_VENVS)
	scripts/ensure-wrk.sh
	$(PY) -m bench.peers --peers-dir $(PEERS_DIR) --out $(PEERS_OUT)/quick --quick $(BENCH_PEERS_ARGS)

# docs/peers.png from the figures of the last full run.
bench-peers-chart: $(PEERS_DIR)/chart/.installed
	$(PEERS_DIR)/chart/bin/python -m bench.peers.chart $(PEERS_OUT)/peers.json docs/peers.png

# The inspector screenshots in docs/ (and the README): a real server, drift-demo traffic, Debian's chromium.
screenshots: $(STAMP)
	scripts/ensure-chromium.sh
	$(PY) scripts/inspector_screenshot.py

# Everything the GPU check (bench/gpu/README.md) carries to a GPU host, in git-ignored folders, and its call plan.
gpu-prepare: $(STAMP)
	PY=$(PY) bench/gpu/prepare.sh

clean:
	rm -rf $(VENV) $(PEERS_DIR) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
