# mayo-dx: the two commands a newcomer runs, plus the benchmarks.
#   make demo   set up .venv, then run the main job on bundled/generated data
#   make test   set up .venv, then run every test
#   make bench  set up .venv, then run the benchmarks (by hand; writes benchmarks/RESULTS.md)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo_out
PYTEST_ARGS ?=

.PHONY: setup test demo bench clean

# The stamp depends on pyproject.toml so a changed dependency list reinstalls.
$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	@touch $@

setup: $(VENV)/.installed

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: setup
	$(BIN)/mayo-dx demo --out $(DEMO_OUT)

# Each script writes its section of benchmarks/RESULTS.md; the memory ones take minutes.
bench: setup
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/ecg_read_throughput.py
	$(BIN)/python benchmarks/ct_read_speed.py
	$(BIN)/python benchmarks/ecg_runtime_speed.py --threads 2 --int8 --write
	$(BIN)/python benchmarks/ct_runtime_speed.py --threads 2 --baseline-windows 2 --write
	$(BIN)/python benchmarks/ecg_training_overhead.py
	$(BIN)/python benchmarks/ecg_training_memory.py --records 20000

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache build *.egg-info
