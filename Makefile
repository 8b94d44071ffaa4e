# Every target does its own setup: a venv in .venv with meshkp installed in editable mode.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
APT_PKGS := gnupg dirmngr debian-keyring iptables iproute2 prometheus haproxy nginx-light tmux faketime

.PHONY: run test test-slow bench chaos chaos-long lint typecheck deps apt clean

$(STAMP): pyproject.toml
	@$(PY) -c 'import ensurepip, venv' 2>/dev/null || { \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3-venv; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

deps: $(STAMP)

# Debian packages the tests use (real GnuPG, the debian-keyring corpus, iptables for partitions,
# promtool of prometheus, haproxy and nginx for deploy/ and lb-config). Without recommends: no services pulled in.
apt:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## Start a local 3-node mesh on loopback with sample keys, and watch it in `meshkp top`.
run: deps
	$(BIN)/meshkp dev --top

## The default test suite (unit, simulation, real-process and GnuPG tests).
test: deps apt
	$(BIN)/python -m pytest -q

test-slow: deps apt
	$(BIN)/python -m pytest -q -m slow

bench: deps apt
	$(BIN)/python -m bench.run_all

## Chaos runs with real processes: kill -9, SIGSTOP, partition, loss (root: netns); docs/chaos.md.
chaos: deps apt
	$(BIN)/python -m pytest -q -m "chaos and not slow" chaos/

## A long run of random nemesis schedules (seed printed for replay); docs/chaos.md.
DURATION ?= 30m
NODES    ?= 5
SEED     ?= $(shell date +%s)
chaos-long: deps apt
	$(BIN)/python -m chaos.long_run --duration $(DURATION) --nodes $(NODES) --seed $(SEED)

lint: deps
	$(BIN)/ruff check meshkp crdt cli tests bench chaos

typecheck: deps
	$(BIN)/mypy crdt meshkp/swim meshkp/control

clean:
	rm -rf $(VENV) .meshkp-dev
