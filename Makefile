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

# The real-systemd tier (tests/systemd; README, "Running under systemd"): a real systemd
# booted with systemd-nspawn on a Debian tree that mmdebstrap builds once and
# ~/.cache/edge-agent keeps, the unit installed by systemd/install.sh. Needs root; the
# two Debian packages it needs are installed here when missing. One pytest-xdist worker
# per test module: each boots its own container, and they mostly wait on real timeouts.
# SOAK is how long the whole data path runs in the sandbox: `make test-systemd SOAK=600`.
SOAK ?= 120
SYSTEMD_TIER = EDGE_AGENT_SOAK_SECONDS=$(SOAK) $(BIN)/python -m pytest tests/systemd \
	-n 4 --dist loadfile -p no:cacheprovider

.PHONY: demo test test-systemd systemd-deps server-deps quick lint bench clean

$(STAMP): pyproject.toml tools/ensure_venv.py
	$(PYTHON) tools/ensure_venv.py $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edge-agent demo

# The real-systemd tier runs in the background beside lint and the main suite (it waits
# on timeouts more than it works); its report follows theirs, and either failing fails.
test: $(STAMP) systemd-deps server-deps
	@tier_log=$$(mktemp); tier_tmp=$$(mktemp -d); \
	echo "started the real-systemd tier (tests/systemd) in the background"; \
	$(SYSTEMD_TIER) --basetemp=$$tier_tmp >$$tier_log 2>&1 & tier=$$!; \
	trap 'kill $$tier 2>/dev/null; wait $$tier; rm -rf $$tier_log $$tier_tmp; exit 130' INT TERM; \
	status=0; \
	set -x; $(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy && \
	$(BIN)/python -m pytest $(PARALLEL) || status=1; set +x; \
	echo "waiting for the real-systemd tier (tests/systemd) ..."; \
	wait $$tier || status=1; \
	cat $$tier_log; rm -rf $$tier_log $$tier_tmp; exit $$status

test-systemd: $(STAMP) systemd-deps
	$(SYSTEMD_TIER)

# systemd-nspawn and mmdebstrap, installed when missing and root (CI is); otherwise the
# tier says what is missing and skips (or fails, under CI=true)
systemd-deps:
	@if ! command -v systemd-nspawn >/dev/null || ! command -v mmdebstrap >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q systemd-container mmdebstrap || \
			echo "make: could not install systemd-container and mmdebstrap"; \
		fi; \
	fi

# The servers the tests start on 127.0.0.1 (tests/fixtures/postgres.py; the MQTT tests'
# mosquitto): Debian's postgresql and mosquitto, installed when missing and root (CI is);
# otherwise those tests say what is missing and skip (or fail, under CI=true). Only the
# packages: the tests run their own servers in temporary directories, never the system's.
server-deps:
	@missing=""; \
	command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
		missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q $$missing || echo "make: could not install$$missing"; \
		else \
			echo "make: missing$$missing (apt-get install$$missing, as root)"; \
		fi; \
	fi

# the same without the real-time end-to-end runs marked slow (the demo, kill -9, systemd timing)
quick: $(STAMP) server-deps
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
