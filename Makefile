# Two entry points, each safe to run twice on a fresh machine:
#   make demo   - set up, then run the pipeline on the embedded digits data
#   make test   - set up, then lint and run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The machines hold these wheels on disk (see pyproject.toml for the allowed range).
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# Debian packages: the Fashion-MNIST files, and a PostgreSQL server for the concurrency tests.
APT_PACKAGES := dataset-fashion-mnist postgresql
STAMP := $(VENV)/.installed
# Where `make test` prepares the wheel check's fresh venv: outside the checkout, one per checkout.
PREPARED_VENV := /tmp/vitnas-wheel-venv-$(shell echo "$(CURDIR)" | md5sum | cut -c1-8)
WHEEL_CHECK_VENV ?=

.PHONY: demo test lint setup sysdeps clean wheel-check

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP) sysdeps

sysdeps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing >/dev/null; \
	fi

# Train a digits supernet (resumed/reported if already there), search it under a 2 MFLOPs budget
# (a rerun adds 50 trials to the same study), export the best subnet.
demo: setup
	$(BIN)/python -m supernet.train hydra.run.dir=runs/demo resume=auto
	$(BIN)/python -m search supernet=runs/demo/supernet.pt budget.flops=2M search.n_trials=50 \
	  hydra.run.dir=runs/demo/search
	$(BIN)/python -m search.export runs/demo/search trial=best out=runs/demo/best overwrite=true

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The wheel check's fresh venv (torch installed into it) is prepared in the background while
# setup installs this one: both mostly wait on pip, and it saves CI two minutes. It runs in its
# own process group (setsid), which an interrupted or terminated `make test` stops with it: a
# background job of a recipe ignores Ctrl-C and would go on installing.
test:
	@PYTHON=$(PYTHON) WHEEL_VENV=$(PREPARED_VENV) setsid bash tests/wheel_check.sh prepare \
	  > $(PREPARED_VENV).log 2>&1 & prepared=$$!; \
	stop() { kill -TERM -- -$$prepared 2>/dev/null; wait $$prepared; \
	  rm -rf $(PREPARED_VENV) $(PREPARED_VENV).log; exit $$1; }; \
	trap 'stop 130' INT; trap 'stop 143' TERM; trap 'stop 129' HUP; \
	$(MAKE) setup lint && $(BIN)/python -m pytest -n 2 --dist loadfile; status=$$?; \
	if ! wait $$prepared; then \
	  cat $(PREPARED_VENV).log; echo "wheel check: preparing its venv failed"; status=1; fi; \
	rm -f $(PREPARED_VENV).log; \
	if [ $$status != 0 ]; then rm -rf $(PREPARED_VENV); exit $$status; fi; \
	$(MAKE) wheel-check WHEEL_CHECK_VENV=$(PREPARED_VENV)

# Build the wheel, install it into a fresh venv and run the pipeline from an empty directory
# (WHEEL_CHECK_VENV=<dir>: into the venv `tests/wheel_check.sh prepare` made there).
wheel-check: $(STAMP)
	PYTHON=$(PYTHON) DEV_PYTHON=$(BIN)/python WHEEL_VENV=$(WHEEL_CHECK_VENV) \
	  bash tests/wheel_check.sh

clean:
	rm -rf runs outputs multirun .pytest_cache
