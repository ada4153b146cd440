# The two commands a newcomer needs: `make run` and `make test`.
# Both need only Python 3.11 (or newer) and git: the first one creates .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
PORT ?= 8000
SD_DATA_DIR ?= ./var
# pytest-xdist workers of the whole suites: most of their time is spent waiting on builds,
# servers and databases, not on a core, so four keep two cores busy.
TEST_WORKERS ?= 4
export PORT SD_DATA_DIR
# pytest keeps the test modules and plugins whose assertions it rewrites (about 300 of them)
# as bytecode; with PYTHONDONTWRITEBYTECODE set by a shell, every test process rewrites them all.
test test-unit test-postgres test-mysql test-multihost acceptance: export PYTHONDONTWRITEBYTECODE :=

.PHONY: run test test-unit test-postgres test-mysql test-multihost test-all acceptance fresh-machine lint \
	bench bench-ui bench-vs-buildbot screenshots clean venv venv-run venv-mysql

# Stamps: what `make run` needs, what the tests add, and the MySQL driver.
RUN_DEPS := $(VENV)/.run-installed
TEST_DEPS := $(VENV)/.test-installed
MYSQL_DEPS := $(VENV)/.mysql-installed

$(PY):
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is needed: install python3 first."; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "$(PYTHON) is $$($(PYTHON) -V 2>&1); Python 3.11 or newer is needed."; exit 1; }
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null \
	  || { echo "$(PYTHON) cannot make virtual environments: install python3-venv."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

$(RUN_DEPS): requirements.txt | $(PY)
	@echo "Installing the server's requirements into $(VENV) (the first time takes a minute)..."
	$(PIP) -r requirements.txt
	@touch $@

$(TEST_DEPS): requirements-dev.txt $(RUN_DEPS)
	@echo "Installing the test and lint tools into $(VENV)..."
	$(PIP) -r requirements-dev.txt
	@touch $@

$(MYSQL_DEPS): requirements-mysql.txt $(RUN_DEPS)
	@echo "Installing the MySQL driver (needs libmariadb-dev, pkg-config and a C compiler)..."
	$(PIP) -r requirements-mysql.txt
	@touch $@

venv-run: $(RUN_DEPS)
venv: $(TEST_DEPS)
venv-mysql: $(MYSQL_DEPS)

## run: migrate, create the demo, then serve the UI/API on $(PORT) with a worker (Ctrl-C stops)
run: $(RUN_DEPS)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py sd_demo
	$(PY) manage.py sd_serve --port $(PORT)

## test: the whole suite on the embedded default (SQLite)
test: $(TEST_DEPS)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

## test-unit: the fast tests only (no real builds, browsers or containers)
test-unit: $(TEST_DEPS)
	$(PY) -m pytest -n 2 --dist loadgroup -m "not slow and not browser and not docker and not oracle"

## test-postgres / test-mysql: the suite against the servers named by these URLs, but for
## the tests that do not depend on the database engine (browser, containers, Screwdriver's
## parser, and every test that never opens the database, marked `nodb` by the root conftest;
## make test runs them), and the API fuzzer with a smaller budget (SD_FUZZ_EXAMPLES=5)
DB_ONLY := -m "not browser and not docker and not oracle and not nodb"
test-postgres: $(TEST_DEPS)
	DATABASE_URL=$${SD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test} \
	SD_FUZZ_EXAMPLES=$${SD_FUZZ_EXAMPLES:-5} $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(DB_ONLY)

test-mysql: $(TEST_DEPS) $(MYSQL_DEPS)
	DATABASE_URL=$${SD_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test} \
	SD_FUZZ_EXAMPLES=$${SD_FUZZ_EXAMPLES:-5} $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(DB_ONLY)

## test-multihost: an API host and three worker hosts in network namespaces, on this machine's
## PostgreSQL and Redis; one worker host dies mid-run (root on Linux; elsewhere it skips)
test-multihost: $(TEST_DEPS)
	SD_TEST_POSTGRES_URL=$${SD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test} \
	$(PY) -m pytest -c multihost/pytest.ini multihost

test-all: test test-postgres test-mysql

## acceptance: a fresh clone's `make run`, driven through HTTP, git, manage.py and signals
acceptance: $(TEST_DEPS)
	$(PY) -m pytest -c acceptance/pytest.ini acceptance

## fresh-machine: `make run` and `make test` on a clean Debian root filesystem (root, Linux)
fresh-machine:
	tools/fresh_machine.sh

lint: $(TEST_DEPS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	PYTHONPATH=. $(VENV)/bin/lint-imports

## bench: time from POST /v4/events to the first log line, and per-step overhead
bench: $(TEST_DEPS)
	$(PY) bench/bench_build_latency.py

## bench-vs-buildbot: the same builds on Buildbot 4.3 (installed in a temporary virtualenv) and here
bench-vs-buildbot: $(TEST_DEPS)
	$(PY) bench/bench_vs_buildbot.py

## bench-ui: a printed log line to Chromium's page, and the 200-job pipeline page's render time
bench-ui: $(TEST_DEPS)
	$(PY) bench/bench_live_logs.py
	$(PY) bench/bench_pipeline_page.py

## screenshots: regenerate docs/screenshots/*.png from a seeded server, in Debian's chromium
screenshots: $(TEST_DEPS)
	$(PY) tools/screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache
