# shopml — the two commands are `make demo` and `make test`; both set up what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip --disable-pip-version-check
STAMP := $(VENV)/.installed
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
QUICK ?=
PYTEST_ARGS ?=
# pip's output goes to a log (this machine's file-based extra indexes add a warning per package);
# on failure the log's tail is shown and make stops.
define pip_install
	@$(1) install -q $(2) > $(3) 2>&1 || { grep -v "is ignored: it is neither" $(3) | tail -40; echo "pip install failed (full log: $(3))"; exit 1; }
endef

# Fragments per concern (e.g. the BigQuery-emulator venv) live in mk/; they may add
# prerequisites of `make test` to TEST_PREREQS.
TEST_PREREQS :=
-include mk/*.mk

.PHONY: help install demo test test-unit test-integration bench lint fmt infra-check system-deps clean stack-up stack-down bundle

help:
	@echo "make demo    - create .venv, start the local stack, run the pipeline end to end, write demo-report/"
	@echo "make test    - create .venv if needed and run the whole test suite"
	@echo "make bench   - run the benchmarks, write bench/out/ (copy figures to bench/RESULTS.md)"
	@echo "make lint    - ruff + mypy;  make infra-check - terraform fmt + checkov"
	@echo "make stack-up / stack-down - the local stack on its own;  make bundle - function bundles"

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing Python packages into $(VENV) (about a minute the first time)"
	$(call pip_install,$(PIP),-r requirements.txt -c constraints.txt,$(VENV)/pip-install.log)
	@# Make the repo root importable from the venv (like an editable install), so that
	@# `functions-framework --source functions/<name>/main.py` finds `shared` from the repo root.
	@$(PY) -c "import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()['purelib'], 'shopml-repo.pth').write_text(str(pathlib.Path.cwd()) + '\n')"
	@$(PY) -c "import functions_framework, google.cloud.pubsub_v1, shared" || { echo "install failed: see $(VENV)/pip-install.log"; exit 1; }
	@touch $(STAMP)

# The console script `shopml` (pyproject's [project.scripts] entry point), written the way pip
# writes one; the repo is on the venv's path through the .pth above, so nothing is built.
SHOPML_BIN := $(VENV)/bin/shopml
$(SHOPML_BIN): $(STAMP) pyproject.toml
	@printf '#!%s\nimport sys\nfrom devkit.cli import main\nsys.exit(main())\n' "$$(cd $(VENV)/bin && pwd)/python" > $@
	@chmod +x $@
	@$@ --help > /dev/null || { echo "the shopml command does not start"; exit 1; }

install: $(STAMP) $(SHOPML_BIN) system-deps

# Debian packages the tests and benchmarks use (promtool, wrk). Installed only when missing.
system-deps:
	@missing=""; command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q --no-install-recommends $$missing >/dev/null; \
	fi
	@command -v gcloud >/dev/null || { echo "gcloud CLI not found: the Pub/Sub and Firestore emulators come from it (see README, Troubleshooting)"; exit 1; }

$(CHECKOV_STAMP):
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	@echo "installing checkov into its own venv (its hcl2 fork clashes with python-hcl2)"
	$(call pip_install,$(CHECKOV_VENV)/bin/pip --disable-pip-version-check,checkov==3.3.30,$(CHECKOV_VENV)/pip-install.log)
	@touch $(CHECKOV_STAMP)

demo: install
	$(SHOPML_BIN) demo $(if $(QUICK),--quick,)

test: install $(CHECKOV_STAMP) $(TEST_PREREQS)
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest tests/unit tests/functions $(PYTEST_ARGS)

test-integration: install
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

bench: install
	$(PY) -m bench $(if $(QUICK),--quick,)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared devkit bench
	@for f in functions/*/main.py; do $(VENV)/bin/mypy "$$f" || exit 1; done

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	terraform fmt -recursive

infra-check: $(CHECKOV_STAMP)
	terraform fmt -check -recursive
	$(CHECKOV_VENV)/bin/checkov -d . --framework terraform --skip-download --quiet --compact

# Each function's deployable bundle (its folder + the shared/ files its import closure needs),
# as Cloud Build and Terraform make them: build/functions/<name>/.
bundle:
	python3 infra/scripts/bundle.py --out build/functions

stack-up: install
	$(SHOPML_BIN) stack up

stack-down:
	@test -x $(SHOPML_BIN) && $(SHOPML_BIN) stack down || true

clean: stack-down
	rm -rf .shopml demo-report bench/out .pytest_cache .mypy_cache .ruff_cache
