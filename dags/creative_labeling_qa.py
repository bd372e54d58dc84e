"""Wiring of the labeling QA DAG. Task bodies call one function of ``ml`` each."""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

APPROVED_DATASET = Asset("creative_approved_dataset")
LABELLED_DATASET = Asset("creative_labelled_dataset")

DOC = """
### Creative labeling QA

Runs when acquisition publishes a new approved dataset (the `creative_approved_dataset` Asset),
or by hand with params:

- `annotations`: the labeling export: CSV (`item_id, annotator_id, label[, brand_voice, signal_strength]`),
  a Label Studio JSON export, or `synthetic://?seed=N&n=M` (the simulated crowd; empty = that,
  sized by `params.yaml`);
- `gold`: the gold items (CSV `item_id, label[, brand_voice]`); empty = the synthetic gold;
- `reviews`: optional, the senior labeler's Label Studio export of the review project;
- `dataset_uri`: optional, the approved dataset version to label (default: the one in the
  triggering Asset event, else `LATEST.json`).

1. **label_qa**: rejects unusable rows with reason codes, scores every annotator on gold and
   against the consensus (flagged annotators' labels do not count), aggregates with Dawid–Skene,
   measures agreement (Krippendorff's alpha with bootstrap intervals, Cohen's and Fleiss' kappa),
   fills the review queue (Label Studio import format), checks duplicates, and applies the QA gate.
   Every decision goes to the audit log. A failed gate fails the run here, with its report.
2. **publish**: the labelled dataset (items with accepted labels) is versioned by content;
   when the version changed, **announce** emits `creative_labelled_dataset`, which training
   is scheduled on.

Outputs live under `$CREATIVE_DATA_URI/runs/<logical date>/labels/`; the steward's page is
`qa_report.html`.
"""


def _run_folder() -> tuple[str, str, str]:
    from ml.common import io
    from ml.common.audit import safe_key
    from ml.common.config import data_root

    ctx = get_current_context()
    when = ctx.get("logical_date") or ctx["dag_run"].run_after
    return io.join(data_root(), "runs", safe_key(when.isoformat())), when.isoformat(), ctx["run_id"]


@dag(
    dag_id="creative_labeling_qa",
    schedule=[APPROVED_DATASET],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["creative", "labeling", "governance"],
    doc_md=DOC,
    default_args={"owner": "data-platform", "retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "annotations": Param("", type="string", description="annotations URI; empty = the simulated crowd"),
        "gold": Param("", type="string", description="gold items URI; empty = the synthetic gold"),
        "reviews": Param("", type="string", description="senior decisions (Label Studio export); optional"),
        "dataset_uri": Param("", type="string", description="approved dataset version folder; optional"),
    },
)
def creative_labeling_qa():
    @task
    def label_qa() -> dict:
        from ml.common import io
        from ml.common.config import data_root, load_params
        from ml.labeling.qa import label_qa as run, resolve_dataset

        ctx = get_current_context()
        p = ctx["params"]
        events = ctx.get("triggering_asset_events") or {}
        announced = [e.extra["uri"] for asset in events for e in events[asset] if (e.extra or {}).get("uri")]
        params = load_params()
        dataset = resolve_dataset(p["dataset_uri"] or (announced[-1] if announced else None),
                                  io.join(data_root(), "datasets", "approved"))
        synthetic = f"synthetic://?seed={params['base']['seed']}&n={params['synthetic']['n']}"
        folder, when, run_id = _run_folder()
        report = run(p["annotations"] or synthetic, p["gold"] or synthetic, io.join(folder, "labels"),
                     logical_date=when, run_id=run_id, audit_uri=io.join(data_root(), "ledger", "labeling"),
                     params=params, dataset=dataset, reviews=p["reviews"] or None)
        if not report["passed"]:
            raise AirflowFailException(f"labeling QA gate failed: {report['gate']['reasons']} "
                                       f"(report: {report['outputs']['qa_report.html']})")
        return {"dataset": dataset, "outputs": report["outputs"], **report["gate"]["metrics"]}

    @task
    def publish(qa: dict) -> dict:
        from ml.common import io
        from ml.common.config import data_root
        from ml.data.publish import publish_labelled

        folder, when, run_id = _run_folder()
        return publish_labelled(io.join(folder, "labels"), io.join(data_root(), "datasets", "labelled"),
                                logical_date=when, run_id=run_id)

    @task.short_circuit
    def labelled_changed(published: dict) -> bool:
        return bool(published["changed"])

    @task(outlets=[LABELLED_DATASET])
    def announce(published: dict) -> dict:
        get_current_context()["outlet_events"][LABELLED_DATASET].extra = {
            "version": published["version"], "uri": published["uri"], "items": published["items"]}
        return {"version": published["version"]}

    published = publish(label_qa())
    labelled_changed(published) >> announce(published)


dag_object = creative_labeling_qa()
