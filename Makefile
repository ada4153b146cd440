# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
SD_DATA_DIR ?= ./var
export PORT SD_DATA_DIR

.PHONY: run test test-postgres test-mysql test-all lint bench bench-ui screenshots clean venv

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is needed: install Python 3.11 first."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

## run: migrate, create the demo, then serve the UI/API on $(PORT) with a worker (Ctrl-C stops)
run: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py sd_demo
	$(PY) manage.py sd_serve --port $(PORT)

## test: the whole suite on the embedded default (SQLite)
test: venv
	$(PY) -m pytest -n 2 --dist loadgroup

## test-postgres / test-mysql: the same suite against the servers named by these URLs
test-postgres: venv
	DATABASE_URL=$${SD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test} $(PY) -m pytest -n 2 --dist loadgroup

test-mysql: venv
	DATABASE_URL=$${SD_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test} $(PY) -m pytest -n 2 --dist loadgroup

test-all: test test-postgres test-mysql

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

## bench: time from POST /v4/events to the first log line, and per-step overhead
bench: venv
	$(PY) bench/bench_build_latency.py

## bench-ui: a printed log line to Chromium's page, and the 200-job pipeline page's render time
bench-ui: venv
	$(PY) bench/bench_live_logs.py
	$(PY) bench/bench_pipeline_page.py

## screenshots: regenerate docs/screenshots/*.png from a seeded server, in Debian's chromium
screenshots: venv
	$(PY) tools/screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache
