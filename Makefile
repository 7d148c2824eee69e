# make report: set everything up and run the main job (params/sweeps/quick.yaml)
# make test:   run the test suite (CI; <= 12 minutes on 2 cores)
# make test-fast: unit tests, no notebooks, nothing slow (<= 2 minutes)
# make docs:   rewrite the generated parts of docs/ (config, CLI, presets)
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
JOBS ?= 2
SWEEP ?= params/sweeps/quick.yaml
ARGS ?=  # more sweep options, e.g. ARGS="--set train.epochs=1 --out reports/short"

.PHONY: setup system report test test-fast lab benchmark docs clean

setup: system $(VENV)/.installed

system:
	bash scripts/system-deps.sh

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name gan-workbook --display-name "Python 3 (GAN Workbook)" >/dev/null
	touch $@

report: setup
	$(PY) -m gan_core sweep $(SWEEP) --jobs $(JOBS) $(ARGS)

test: setup
	$(PY) -m pytest tests -n 2 --dist loadgroup -q --durations=10 -p no:cacheprovider
	GAN_WORKBOOK_LAB_CONFIG=params/smoke.yaml $(PY) -m pytest notebooks --nbval-lax -q -p no:cacheprovider

test-fast: setup
	$(PY) -m pytest tests -m "not slow" -n 2 -q --durations=5 -p no:cacheprovider

lab: setup
	$(VENV)/bin/jupyter lab notebooks

benchmark: setup  # a few minutes on 2 cores; writes the throughput table of docs/reference/performance.md
	$(PY) benchmarks/train_throughput.py params/quick.yaml --doc
	$(PY) benchmarks/time_to_quality.py params/quick.yaml --seeds 0 1 2 --epochs 3
	@if [ -d reports/quick ]; then $(PY) benchmarks/sweep_overhead.py reports/quick; fi

docs: setup
	$(PY) docs/make_reference.py

clean:
	rm -rf reports runs
