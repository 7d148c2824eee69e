# make report: set everything up and run the main job (params/sweeps/quick.yaml)
# make test:   run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
JOBS ?= 2
SWEEP ?= params/sweeps/quick.yaml

.PHONY: setup system report test lab benchmark clean

setup: system $(VENV)/.installed

system:
	bash scripts/system-deps.sh

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

report: setup
	$(PY) -m gan_core sweep $(SWEEP) --jobs $(JOBS)

test: setup
	$(PY) -m pytest tests notebooks --nbval-lax -q

lab: setup
	$(VENV)/bin/jupyter lab notebooks

benchmark: setup
	$(PY) benchmarks/train_throughput.py params/quick.yaml

clean:
	rm -rf reports runs
