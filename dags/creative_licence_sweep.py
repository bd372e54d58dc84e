"""Wiring of the licence sweep DAG. Task bodies call one function of ``ml`` each."""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

APPROVED_DATASET = Asset("creative_approved_dataset")
WITHDRAWN_CONSENTS = Asset("creative_withdrawn_consents")

DOC = """
### Creative licence and consent sweep

Daily (`licensing.sweep.schedule` in `params.yaml`), and whenever the consent system announces
a new list of withdrawn consents (the `creative_withdrawn_consents` Asset):

1. **sweep**: re-checks every asset of the latest approved dataset against the run's date and
   the withdrawn consents (param `withdrawn`; empty = `$CREATIVE_DATA_URI/consents/withdrawn.csv`
   when it exists). Refusals (expired, expiring inside the policy's horizon, withdrawn) go to the
   licence ledger; the dataset versions and registered model versions that hold them are listed
   in the report (`sweep.html`), and those model versions are tagged `promotion_blocked`. The
   approved dataset without them is published as a new version.
2. **announce**: when a new approved dataset version was published, emits
   `creative_approved_dataset`: labeling QA, then retraining, follow from it.
3. **check_champion**: when the model now serving was trained on a refused asset, the run fails
   loudly for the release manager (`licensing.sweep.fail_on_champion`); serving goes on until a
   clean model is promoted.

Outputs live under `$CREATIVE_DATA_URI/runs/<logical date>/sweep/`.
"""


def _schedule():
    from ml.common.config import load_params

    cron = load_params()["licensing"]["sweep"]["schedule"]
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=[WITHDRAWN_CONSENTS])


@dag(
    dag_id="creative_licence_sweep",
    schedule=_schedule(),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["creative", "governance", "licensing"],
    doc_md=DOC,
    default_args={"owner": "data-governance", "retries": 2, "retry_delay": timedelta(minutes=5)},
    params={"withdrawn": Param("", type="string", description="withdrawn consents URI; empty = the default drop")},
)
def creative_licence_sweep():
    @task
    def sweep() -> dict:
        from ml.common import io
        from ml.common.audit import safe_key
        from ml.common.config import data_root, load_params
        from ml.licensing.sweep import licence_sweep

        ctx = get_current_context()
        when = ctx.get("logical_date") or ctx["dag_run"].run_after
        root = data_root()
        withdrawn = ctx["params"]["withdrawn"] or io.join(root, "consents", "withdrawn.csv")
        r = licence_sweep(io.join(root, "datasets"), on=when.date().isoformat(), run_id=ctx["run_id"],
                          ledger_uri=io.join(root, "ledger", "licences"), params=load_params(),
                          out=io.join(root, "runs", safe_key(when.isoformat()), "sweep"),
                          withdrawn_uri=withdrawn if io.exists(withdrawn) else None)
        return {k: r[k] for k in ("on", "refused", "refused_by_reason", "new_dataset_version", "champion_affected",
                                  "model_versions", "outputs")}

    @task.short_circuit
    def republished(swept: dict) -> bool:
        return swept["new_dataset_version"] is not None

    @task(outlets=[APPROVED_DATASET])
    def announce(swept: dict) -> dict:
        from ml.common import io
        from ml.common.config import data_root

        uri = io.join(data_root(), "datasets", "approved", swept["new_dataset_version"])
        get_current_context()["outlet_events"][APPROVED_DATASET].extra = {
            "version": swept["new_dataset_version"], "uri": uri, "reason": "licence sweep"}
        return {"version": swept["new_dataset_version"]}

    @task
    def check_champion(swept: dict) -> dict:
        from ml.common.config import load_params

        if swept["champion_affected"] and load_params()["licensing"]["sweep"]["fail_on_champion"]:
            champion = [m for m in swept["model_versions"] if "champion" in m["aliases"]][0]
            raise AirflowFailException(
                f"the champion (version {champion['version']}) was trained on {len(champion['assets'])} asset(s) "
                f"that are now refused ({swept['refused_by_reason']}); it keeps serving until a clean model is "
                f"promoted. Report: {swept['outputs']['html']}")
        return {"champion_affected": swept["champion_affected"]}

    swept = sweep()
    republished(swept) >> announce(swept)
    check_champion(swept)


dag_object = creative_licence_sweep()
