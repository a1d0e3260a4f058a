# Two entry points a technician needs: `make demo` and `make test`.
# The virtual environment is created on first use and reused afterwards;
# it is rebuilt only when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The suite in 4 worker processes (pytest-xdist) on a 2-core machine: most tests wait on
# sockets, subprocesses and serial lines, not on the CPU. Tests that must not overlap
# carry @pytest.mark.xdist_group (--dist loadgroup keeps a group on one worker).
PARALLEL ?= -n 4 --dist loadgroup

.PHONY: demo test quick lint bench clean

$(STAMP): pyproject.toml tools/ensure_venv.py
	$(PYTHON) tools/ensure_venv.py $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edge-agent demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PARALLEL)

# the same without the real-time end-to-end runs marked slow (the demo, kill -9, systemd timing)
quick: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PARALLEL) -m "not slow"

bench: $(STAMP)
	$(BIN)/python bench/run.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
