# The BigQuery emulator (bqemulator, PyPI) in its own venv: it caps protobuf below 7, so it
# cannot share .venv. `make test` builds it (TEST_PREREQS); tests/contract/test_bigquery_contract_runner.py
# starts the emulator from here and runs the contract suite inside this venv against it.
BQ_VENV := .venv-bq
BQ_PY := $(BQ_VENV)/bin/python
BQ_STAMP := $(BQ_VENV)/.installed
# bqemulator looks for DuckDB's spatial extension under $HOME/.duckdb and downloads it when it
# is missing (no internet here): the runner sets HOME to this folder, filled from the wheel.
BQ_HOME := $(BQ_VENV)/home
# sqlglot is not pinned here: bqemulator 1.4.0 requires sqlglot>=30.9,<30.12 (the main venv has
# 30.30.0). The BigQuery adapter uses sqlglot only to qualify view table names, which both do alike.
BQ_PACKAGES := bqemulator==1.4.0 duckdb==1.5.5 duckdb-extension-spatial==1.5.5 numpy pandas==2.3.3 \
	google-cloud-bigquery==3.47.0 pytest==9.0.3 pytest-timeout==2.4.0

$(BQ_STAMP): mk/bq.mk
	@test -x $(BQ_PY) || $(PYTHON) -m venv $(BQ_VENV)
	@echo "installing bqemulator into $(BQ_VENV) (its own venv: protobuf < 7)"
	$(call pip_install,$(BQ_VENV)/bin/pip --disable-pip-version-check,$(BQ_PACKAGES),$(BQ_VENV)/pip-install.log)
	@mkdir -p $(BQ_HOME)/.duckdb/extensions/v1.5.5/linux_amd64
	@ext=$$($(BQ_PY) -c "import duckdb_extension_spatial, pathlib; print(next(pathlib.Path(duckdb_extension_spatial.__file__).parent.rglob('v1.5.5/spatial.duckdb_extension')))") \
	  && cp "$$ext" $(BQ_HOME)/.duckdb/extensions/v1.5.5/linux_amd64/ \
	  || { echo "spatial.duckdb_extension not found in duckdb-extension-spatial"; exit 1; }
	@$(BQ_PY) -c "import google.cloud.bigquery, sqlglot, pytest" || { echo "$(BQ_VENV) install failed: see $(BQ_VENV)/pip-install.log"; exit 1; }
	@test -x $(BQ_VENV)/bin/bqemulator || { echo "bqemulator entry point missing in $(BQ_VENV)/bin"; exit 1; }
	@touch $(BQ_STAMP)

.PHONY: bq-venv
bq-venv: $(BQ_STAMP)

TEST_PREREQS += $(BQ_STAMP)
