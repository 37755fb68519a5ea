# The two commands a new user needs: `make run` and `make test`. Both go through `make install`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_VAR := $(CURDIR)/var/test
PG_URL ?= postgres://postgres@127.0.0.1:5432/beautybrain
REDIS_BASE ?= redis://127.0.0.1:6379

.PHONY: install run test test-fast test-system-deps clean

install: $(STAMP)

# Re-installs only when the dependency list changes. torch goes first, pinned, so nothing below
# can pull a multi-GB CUDA build.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

run: install
	$(BIN)/python manage.py run_embedded

# Chromium for the browser tests, from the system's packages (Playwright cannot download browsers here).
test-system-deps:
	@test -x /usr/bin/chromium || { \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium; fi; }

# 1. the whole suite on SQLite + the filesystem broker (real Celery worker included);
# 2. the integration tests on PostgreSQL + Redis + a real Celery worker (started if not running).
test: install test-system-deps
	rm -rf $(TEST_VAR) && mkdir -p $(TEST_VAR)
	BEAUTYBRAIN_VAR_DIR=$(TEST_VAR) $(BIN)/python -m pytest -m "not pg"
	$(BIN)/python -m tests.services ensure
	BEAUTYBRAIN_VAR_DIR=$(TEST_VAR)/pg DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(REDIS_BASE)/15 \
	  REDIS_URL=$(REDIS_BASE)/14 $(BIN)/python -m pytest -m pg

test-fast: install
	BEAUTYBRAIN_VAR_DIR=$(TEST_VAR) $(BIN)/python -m pytest -m "not pg and not slow and not browser" -x

clean:
	rm -rf $(VENV) var/test
