"""Wiring of the drift monitoring DAG. Task bodies call one function of ``ml`` each."""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, CronTriggerTimetable, dag, get_current_context, task

DRIFT_DETECTED = Asset("creative_drift_detected")

DOC = """
### Creative drift monitoring

On `monitoring.schedule` (hourly by default), judges the window of `monitoring.window_hours`
before the run's logical date (never "the last hour" by the wall clock, so a re-run judges the
same window):

1. **monitor**: the champion's (and the canary's) answers in the window, from the scoring
   service's prediction log, against the champion's training data with its own scores
   (computed once per champion and cached): text descriptors, context (industry, channel,
   audience), copy embedding and score drift with Evidently's tests, and target drift
   (click-through, conversion rates) when the outcome feed under `$CREATIVE_DATA_URI/outcomes/`
   has the window. Reports per window under
   `$CREATIVE_DATA_URI/monitoring/windows/<start>/`; figures in the MLflow experiment
   `creative-copy-scorer-monitoring`. A drifting canary is rolled back here.
2. **drifted** / **trigger_retraining**: champion drift (inputs or target) emits `creative_drift_detected`, on
   which `creative_training` is scheduled.
"""


def _schedule():
    from ml.common.config import load_params

    return CronTriggerTimetable(load_params()["monitoring"]["schedule"], timezone="UTC")


@dag(
    dag_id="creative_drift_monitoring",
    schedule=_schedule(),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["creative", "monitoring", "drift"],
    doc_md=DOC,
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(minutes=2)},
)
def creative_drift_monitoring():
    @task
    def monitor() -> dict:
        from ml.common import io
        from ml.common.audit import safe_key
        from ml.common.config import data_root, load_params
        from ml.monitoring.monitor import monitor_window

        ctx = get_current_context()
        params = load_params()
        end = ctx.get("logical_date") or ctx["dag_run"].run_after
        start = end - timedelta(hours=float(params["monitoring"]["window_hours"]))
        root = data_root()
        return monitor_window(io.join(root, "predictions"), start, end,
                              io.join(root, "monitoring", "windows", safe_key(start.isoformat())), params,
                              cache_uri=io.join(root, "monitoring", "reference"),
                              audit_uri=io.join(root, "ledger", "releases"), outcomes_uri=io.join(root, "outcomes"))

    @task.short_circuit
    def drifted(result: dict) -> bool:
        return bool(result["retrain"])

    @task(outlets=[DRIFT_DETECTED])
    def trigger_retraining(result: dict) -> dict:
        champion = result["champion"]
        get_current_context()["outlet_events"][DRIFT_DETECTED].extra = {
            "version": champion["version"], "window": result["window"], "features": champion["drifted_features"]}
        return {"retrain": True, "champion": champion["version"]}

    result = monitor()
    drifted(result) >> trigger_retraining(result)


dag_object = creative_drift_monitoring()
