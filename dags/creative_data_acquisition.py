"""Wiring of the acquisition DAG. Task bodies call one function of ``ml`` each."""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

APPROVED_DATASET = Asset("creative_approved_dataset")

DOC = """
### Creative data acquisition

Brings creative assets and ad copy in from the sources given as the `sources` param
(folders, `s3://bucket/prefix`, `synthetic://?seed=N&n=M`; empty means the synthetic default of
`params.yaml`), then:

1. **acquire**: every input is checked at the door; bad input is quarantined with a reason code
   (`quarantine.jsonl`), accepted content is stored by SHA-256 and listed in `manifest.parquet`.
2. **licence_check**: the licence and consent gate; every decision goes to the append-only
   licence ledger (`python -m ml ledger --asset ID` answers "why is this asset in or out").
3. **validate_manifest / validate_ad_copy**: the Great Expectations data contracts; a failing
   contract fails the run here, before anything downstream uses the data.
4. **publish**: the approved dataset is versioned by content; when the version changed,
   **announce** emits the `creative_approved_dataset` Asset event that schedules the next stage.

Outputs live under `$CREATIVE_DATA_URI/runs/<logical date>/`; each report is JSON (and HTML for
the contracts).
"""


def _run_folder() -> tuple[str, str, str]:
    """(run folder URI, logical date ISO, run id) for the running task."""
    from ml.common import io
    from ml.common.audit import safe_key
    from ml.common.config import data_root

    ctx = get_current_context()
    when = ctx.get("logical_date") or ctx["dag_run"].run_after
    return io.join(data_root(), "runs", safe_key(when.isoformat())), when.isoformat(), ctx["run_id"]


def _settings() -> dict:
    from ml.common.config import load_params

    return load_params()["acquire"]


SETTINGS = _settings()


@dag(
    dag_id="creative_data_acquisition",
    schedule=SETTINGS.get("schedule"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["creative", "data", "governance"],
    doc_md=DOC,
    default_args={"owner": "data-platform", "retries": SETTINGS["retries"],
                  "retry_delay": timedelta(seconds=SETTINGS["retry_delay_seconds"])},
    params={
        "sources": Param([], type="array", items={"type": "string", "minLength": 1},
                         description="Source URIs; empty = the synthetic default of params.yaml"),
    },
)
def creative_data_acquisition():
    @task
    def acquire() -> dict:
        from ml.common import io
        from ml.common.config import load_params
        from ml.data.acquire import acquire as run, default_sources

        folder, when, _ = _run_folder()
        params = load_params()
        sources = get_current_context()["params"]["sources"]
        report = run(sources or default_sources(params), io.join(folder, "acquired"), logical_date=when, params=params)
        if not report["passed"]:
            raise AirflowFailException(f"nothing accepted: {report['quarantined_by_reason']}")
        return {k: report[k] for k in ("seen", "accepted", "quarantined", "quarantined_by_reason", "outputs")}

    @task
    def licence_check(acquired: dict) -> dict:
        from ml.common import io
        from ml.common.config import data_root, load_params
        from ml.licensing.gate import licence_check as run

        folder, when, run_id = _run_folder()
        report = run(acquired["outputs"]["manifest.parquet"], io.join(folder, "approved"), logical_date=when,
                     run_id=run_id, ledger_uri=io.join(data_root(), "ledger", "licences"), params=load_params())
        if not report["passed"]:
            raise AirflowFailException(f"licence gate failed: {report['gate']['reasons']}")
        return {k: report[k] for k in ("approved", "rejected", "rejected_by_reason", "policy_version", "outputs")}

    @task
    def validate(licensed: dict, table: str, suite: str) -> dict:
        from ml.common import io
        from ml.contracts import validate as run

        folder, _, _ = _run_folder()
        report = run(licensed["outputs"][table], suite, io.join(folder, "contracts", suite))
        if not report["passed"]:
            raise AirflowFailException(f"data contract {suite} failed: {report['failed_expectations']} "
                                       f"(report: {report['outputs']['html']})")
        return {"suite": suite, "passed": True, "outputs": report["outputs"]}

    @task
    def publish(licensed: dict) -> dict:
        from ml.common import io
        from ml.common.config import data_root
        from ml.data.publish import publish_dataset

        folder, when, run_id = _run_folder()
        return publish_dataset(io.join(folder, "approved"), io.join(data_root(), "datasets", "approved"),
                               logical_date=when, run_id=run_id)

    @task.short_circuit
    def approved_changed(published: dict) -> bool:
        return bool(published["changed"])

    @task(outlets=[APPROVED_DATASET])
    def announce(published: dict) -> dict:
        get_current_context()["outlet_events"][APPROVED_DATASET].extra = {
            "version": published["version"], "uri": published["uri"], "assets": published["assets"]}
        return {"version": published["version"]}

    acquired = acquire()
    licensed = licence_check(acquired)
    checks = [validate.override(task_id="validate_manifest")(licensed, "approved.parquet", "manifest"),
              validate.override(task_id="validate_ad_copy")(licensed, "approved_copy.parquet", "ad_copy")]
    published = publish(licensed)
    checks >> published
    approved_changed(published) >> announce(published)


dag_object = creative_data_acquisition()
