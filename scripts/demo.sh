#!/usr/bin/env bash
# The demo behind `make demo`: the whole pipeline that exists so far, on the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
date_=$(python -c "from ml.common.config import load_params; print(load_params()['run']['logical_date'])")

echo "== 1/3 DVC pipeline (acquire -> licence_check -> validate), as of ${date_}"
dvc repro
echo "== 2/3 dvc push to the local remote (.local/dvc-remote)"
dvc push -q && echo "pushed"
echo "== 3/3 Airflow DAG creative_data_acquisition, run with 'airflow dags test'"
airflow dags test creative_data_acquisition "${date_}" > .local/demo-dag.log 2>&1 \
  || { tail -40 .local/demo-dag.log; echo "the DAG failed; full log: .local/demo-dag.log"; exit 1; }
grep -E "DagRun Finished" .local/demo-dag.log | sed 's/.*\(state=[a-z]*\).*/DAG run finished: \1/'
run_dir=$(ls -d data/runs/* | tail -1)
cat <<MSG

Results
  DVC pipeline outputs       data/acquired/  data/approved/  data/contracts/   (versions: dvc.lock)
    intake report            data/acquired/report.json, quarantine: data/acquired/quarantine.jsonl
    licence decisions        data/approved/report.json, refusals: data/approved/rejected.jsonl
    data contract reports    data/contracts/manifest/validation.html  data/contracts/ad_copy/validation.html
  Airflow run                ${run_dir}/   (log: .local/demo-dag.log)
  approved dataset versions  data/datasets/approved/LATEST.json
  licence ledger             data/ledger/licences/   (ask: .venv/bin/python -m ml ledger --asset <id prefix>)
  DVC remote                 .local/dvc-remote/
MSG
