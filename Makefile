# The README's commands. Everything a fresh machine needs is installed from here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-installed
TEST_STAMP := $(VENV)/.test-installed
PORT ?= 8501
# Test processes: a module's tests stay in one process (its servers and browser are shared).
TEST_WORKERS ?= 2
# Scheduled-export email links point at the dashboard `make run` serves, unless the user set one.
RUN_BASE_URL = $(or $(NANO_EXPORT_BASE_URL),http://127.0.0.1:$(PORT))
# Modules held to a higher coverage floor than the rest of the package.
CORE := nano_export/filters.py nano_export/privacy/* nano_export/exporter.py nano_export/jobs/*.py

.PHONY: run test setup lint typecheck chromium bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(RUN_STAMP)

setup: $(TEST_STAMP)

## make run: set up, create the database, seed demo data and a demo login if empty, start the dashboard
run: $(RUN_STAMP)
	$(BIN)/nano-export demo
	NANO_EXPORT_BASE_URL='$(RUN_BASE_URL)' $(BIN)/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT)

## make test: set up and run the whole suite with its quality gates
test: $(TEST_STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	rm -f .coverage .coverage.*
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --cov --cov-report= $(PYTEST_ARGS)
	# pytest-cov has combined its workers' data; a child process's file written after that is added
	# (--append: never replacing the suite's). A file cut short by a killed child only warns.
	if ls .coverage.* >/dev/null 2>&1; then $(BIN)/coverage combine -q --append || true; fi
	@left=$$(ls .coverage.* 2>/dev/null | wc -l); if [ $$left -gt 0 ]; then \
		echo "$$left coverage file(s) cut short by a killed child process: left out"; \
		rm -f .coverage.*; \
	fi
	$(BIN)/coverage report --fail-under=85
	@for module in $(CORE); do \
		$(BIN)/coverage report --include=$$module --fail-under=90 >/dev/null \
			|| { echo "coverage of $$module is under 90%"; $(BIN)/coverage report --include=$$module; exit 1; }; \
	done; echo "coverage of $(CORE): each at least 90%"

chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
		else \
			echo "chromium is missing: install Debian's chromium package (as root: apt-get install chromium)"; \
			exit 1; \
		fi; \
	fi

## make bench: export speed and memory against the sqlite3 CLI and psql \copy (three runs each, on
## PostgreSQL when NANO_EXPORT_TEST_PG_URL names a server), then every export format against CSV
## (FORMATS_BENCH_ARGS="--rows 100000" for a quick run), then the Explore page cold and warm next
## to its targets, on SQLite and, when NANO_EXPORT_TEST_PG_URL is set, PostgreSQL
## (EXPLORE_BENCH_ARGS="--rows 100000 --keep-pg" for a quicker rerun)
BENCH_ARGS ?= --repeat 3
EXPLORE_PG = $(if $(NANO_EXPORT_TEST_PG_URL),--pg-url '$(NANO_EXPORT_TEST_PG_URL)')
bench: $(TEST_STAMP)
	$(BIN)/python bench/export_bench.py $(BENCH_ARGS)
	$(BIN)/python bench/formats_bench.py $(FORMATS_BENCH_ARGS)
	$(BIN)/python bench/explore_bench.py $(EXPLORE_PG) $(EXPLORE_BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .coverage .coverage.*
