#!/usr/bin/env bash
# The demo behind `make demo`: the whole pipeline that exists so far, on the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
date_=$(python -c "from ml.common.config import load_params; print(load_params()['run']['logical_date'])")

dag_test() {  # dag_test <dag id> <log file>
  airflow dags test "$1" "${date_}" > "$2" 2>&1 \
    || { tail -40 "$2"; echo "the DAG $1 failed; full log: $2"; exit 1; }
  grep -E "DagRun Finished" "$2" | sed "s/.*\(state=[a-z]*\).*/$1: DAG run finished: \1/"
}

echo "== 1/9 DVC pipeline (acquire -> licence_check -> validate -> label_qa -> train -> evaluate), as of ${date_}"
echo "   training a LoRA adapter on the CPU takes a few minutes; progress is printed per epoch"
dvc repro
echo "== 2/9 dvc push to the local remote (.local/dvc-remote)"
dvc push -q && echo "pushed"
echo "== 3/9 MLflow: track the training and register the model that passed its gates"
python -m ml register --train data/model --evaluation data/evaluation --labelled data/labels/labelled.parquet \
  --manifest data/approved/approved.parquet --run-name "demo-${date_}"
echo "== 4/9 release: the challenger is promoted with a recorded approval (the first model becomes champion)"
python -m ml promote --approved-by "make demo" --reason "demo release of the model just trained"
echo "== 5/9 Airflow DAG creative_data_acquisition, run with 'airflow dags test'"
dag_test creative_data_acquisition .local/demo-dag.log
echo "== 6/9 Airflow DAG creative_labeling_qa on the dataset just published"
dag_test creative_labeling_qa .local/demo-labeling-dag.log
echo "== 7/9 licence and consent sweep as of ${date_} (daily DAG creative_licence_sweep; here on the command line)"
python -m ml licence-sweep --datasets data/datasets --on "${date_}" --out data/sweep
echo "== 8/9 the scoring service: started briefly, a few examples scored over HTTP"
port=$(python -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
python -m ml serve --port "${port}" > .local/demo-serve.log 2>&1 &
serve_pid=$!
trap 'kill ${serve_pid} 2>/dev/null || true' EXIT
python scripts/demo_score.py "http://127.0.0.1:${port}" data/labels/labelled.parquet \
  || { tail -20 .local/demo-serve.log; exit 1; }
kill "${serve_pid}"; wait "${serve_pid}" 2>/dev/null || true; trap - EXIT
if python -c "import sys; from ml.registry.release import state; sys.exit('canary' not in state()['aliases'])"; then
  # a re-run put the new version in canary: the demo leaves no canary in flight (see: ml status)
  python -m ml rollback --by "make demo" --reason "the demo ends its canary"
fi
python -m ml status --limit 5
echo "== 9/9 drift of the service's answers (the prediction log) against the labelled data (exit 1 = drift)"
drift_rc=0
python -m ml drift --reference data/labels/labelled.parquet --current data/predictions --out data/drift || drift_rc=$?
[ "${drift_rc}" -le 1 ] || { echo "the drift command failed (exit ${drift_rc})"; exit 1; }
run_dir=$(ls -d data/runs/* | tail -1)
cat <<MSG

Results
  DVC pipeline outputs       data/acquired/  data/approved/  data/contracts/  data/labels/   (versions: dvc.lock)
    intake report            data/acquired/report.json, quarantine: data/acquired/quarantine.jsonl
    licence decisions        data/approved/report.json, refusals: data/approved/rejected.jsonl
    data contract reports    data/contracts/manifest/validation.html  data/contracts/ad_copy/validation.html
    labeling QA report       data/labels/qa_report.html  (annotators: data/labels/annotators.csv,
                             review queue for Label Studio: data/labels/review_queue.json)
  Airflow runs               ${run_dir}/   (logs: .local/demo-dag.log, .local/demo-labeling-dag.log)
    labeling QA report       ${run_dir}/labels/qa_report.html
  approved dataset versions  data/datasets/approved/LATEST.json
  labelled dataset versions  data/datasets/labelled/LATEST.json   (what training reads)
  licence ledger             data/ledger/licences/   (ask: .venv/bin/python -m ml ledger --asset <id prefix>)
  labeling QA audit log      data/ledger/labeling/
  model (LoRA adapter)       data/model/adapter.npz   (training report: data/model/train_report.json)
  evaluation gate report     data/evaluation/evaluation.html   (slices: data/evaluation/slices.csv)
  MLflow (runs, registry)    .local/mlflow/mlflow.db, artifacts .local/mlflow/artifacts/
                             open it: .venv/bin/mlflow ui --backend-store-uri sqlite:///.local/mlflow/mlflow.db
                             registered model creative-copy-scorer (python -m ml status: aliases and audit)
  release audit log          data/ledger/releases/
  licence sweep report       data/sweep/sweep.html
  drift report               data/drift/drift.html, data/drift/drift.json   (hourly: DAG creative_drift_monitoring)
  scoring service            .venv/bin/python -m ml serve --port 8080   (log of the demo's run: .local/demo-serve.log)
    prediction log           data/predictions/date=…/hour=…/
  DVC remote                 .local/dvc-remote/
MSG
