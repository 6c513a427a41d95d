# make demo   - load the offline demo jobs into DuckDB with Meltano, build the dbt models, print a report
# make test   - lint, type-check and run every test (end-to-end Postgres tests included)
# make clean  - remove the environments, plugins and outputs made here

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
MELTANO_VENV := .venv-meltano
MELTANO_VERSION := 4.4.1
MELTANO := $(MELTANO_VENV)/bin/meltano

# Meltano runs offline: no usage stats, no version check (see meltano.yml).
export MELTANO_SEND_ANONYMOUS_USAGE_STATS := false
export MELTANO_CLI_DISABLE_VERSION_CHECK := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help demo test lint pytest pythons venv meltano plugins snowflake-plugin clean

help:
	@echo "make demo   - run the demo (sandbox API -> Meltano -> DuckDB -> dbt -> report)"
	@echo "make test   - ruff, mypy and pytest (includes real Meltano + PostgreSQL runs)"
	@echo "make clean  - remove .venv, .venv-meltano, .meltano, .demo and output"

# The project's dev environment: the tap, the distributions of packages/ (the import log
# writer and the sandbox), editable, and the test and lint tools.
# pip >= 25.1 understands `--group` ([dependency-groups] in pyproject.toml). The tap
# brings the import log writer (packages/prism-import-log) from its folder; it is then
# made editable on its own, since pip refuses one project asked for both ways at once.
# The sandbox, too, goes in after the tap: in a .venv made before it had a distribution
# of its own, the tap's reinstall removes the prism-sandbox command, which was the tap's.
IMPORT_LOG := packages/prism-import-log
SANDBOX := packages/prism-sandbox
$(VENV)/.installed: pyproject.toml $(IMPORT_LOG)/pyproject.toml $(SANDBOX)/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade "pip>=25.1"
	$(VENV)/bin/python -m pip install --quiet -e . --group dev
	$(VENV)/bin/python -m pip install --quiet --no-deps -e $(IMPORT_LOG) -e $(SANDBOX)
	touch $@

# Meltano in its own environment, apart from the project's.
$(MELTANO_VENV)/.installed:
	$(PYTHON) -m venv $(MELTANO_VENV)
	$(MELTANO_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MELTANO_VENV)/bin/python -m pip install --quiet "meltano==$(MELTANO_VERSION)"
	touch $@

# The plugins of meltano.yml that the demo and most tests use, each in its own
# environment under .meltano/ (again when pyproject.toml changes: the tap plugin needs its
# new dependencies). Named, because a bare `meltano install` would install every plugin,
# target-snowflake and dbt-snowflake too. tap-prism-imports-batch shares its parent's
# environment. dbt-duckdb builds the demo's models, dbt-postgres the pipeline tests'.
PLUGINS := tap-prism-imports tap-prism-imports-batch target-jsonl target-duckdb target-postgres \
	dbt-duckdb dbt-postgres
.meltano/.plugins-installed: meltano.yml pyproject.toml $(IMPORT_LOG)/pyproject.toml \
		$(MELTANO_VENV)/.installed
	$(MELTANO) install $(PLUGINS)
	$(WRITER_EDITABLE_IN_TAP_PLUGIN)
	$(COMPILE_BYTECODE)
	touch $@

# The tap plugin got a copy of the writer distribution, and an installer keeps a copy
# whose version did not change: here it is made editable, so it is always this tree's.
WRITER_EDITABLE_IN_TAP_PLUGIN = $(MELTANO_VENV)/bin/uv pip install --quiet --no-deps \
	--python .meltano/extractors/tap-prism-imports/venv/bin/python -e $(IMPORT_LOG)

# target-snowflake only for its type-mapping test (tests/test_snowflake_types.py),
# dbt-snowflake only for the models' offline compile check (tests/test_dbt_snowflake.py).
.meltano/.snowflake-installed: meltano.yml $(MELTANO_VENV)/.installed
	$(MELTANO) install target-snowflake dbt-snowflake
	touch $@

# Meltano's and its plugins' environments get no bytecode at install, and with
# PYTHONDONTWRITEBYTECODE set (as in many container images) every process start
# compiles each module again, paid by the tap twice per `meltano run`, by Meltano and
# by the loader (measured: docs/performance.md, "Start-up and bytecode").
# compileall exits non-zero for the odd file written for another Python (those are
# compiled at import, as before), so its status is not checked.
COMPILE_BYTECODE = for venv in $(MELTANO_VENV) .meltano/*/*/venv; do \
	  $$venv/bin/python -m compileall -qq -j 0 $$venv/lib >/dev/null || true; done; \
	$(MELTANO_VENV)/bin/python -m compileall -qq -j 0 tap_prism_imports >/dev/null || true

venv: $(VENV)/.installed
meltano: $(MELTANO_VENV)/.installed
plugins: .meltano/.plugins-installed
snowflake-plugin: .meltano/.snowflake-installed

demo: $(VENV)/.installed .meltano/.plugins-installed
	bash scripts/demo.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(VENV)/bin/mypy tap_prism_imports $(IMPORT_LOG)/prism_import_log $(SANDBOX)/prism_sandbox \
		tests benchmarks scripts

# PIPELINE_TESTS=required: the end-to-end tests fail, instead of skipping, when
# Meltano, its plugins or the PostgreSQL server binaries are missing.
pytest: $(VENV)/.installed .meltano/.plugins-installed .meltano/.snowflake-installed
	PIPELINE_TESTS=required $(VENV)/bin/pytest $(PYTEST_ARGS)

# The unit tests again on the other Pythons the classifiers claim (each found here, in
# .venv-py3.x); the output names the versions run and skipped.
pythons: $(VENV)/.installed
	$(VENV)/bin/python scripts/unit_tests_on_pythons.py

test: lint pytest pythons

clean:
	rm -rf $(VENV) .venv-py3.* $(MELTANO_VENV) .meltano .demo output
