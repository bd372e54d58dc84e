"""Wiring of the training DAG. Task bodies call one function of ``ml`` each."""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

LABELLED_DATASET = Asset("creative_labelled_dataset")
DRIFT_DETECTED = Asset("creative_drift_detected")

DOC = """
### Creative training

LoRA fine-tuning of the copy scorer (frozen all-MiniLM-L6-v2 base, adapters on attention query
and value, engagement and brand-voice heads) on the QA-approved labelled dataset. Runs nightly
(`training.schedule` in `params.yaml`), whenever labeling QA publishes a new labelled dataset,
and when drift monitoring finds the champion drifted (`creative_drift_detected`).

Params (per run; everything else is in `params.yaml`): `lora_rank`, `epochs`, `dataset_version`
(a labelled dataset version; empty = `LATEST`), `brands` (a subset to train on; empty = all),
`force` (train even when nothing changed since the champion).

1. **load_data**: resolves the labelled dataset version and the licence-approved manifest it
   came from; applies the brand subset.
   **changed**: when the champion was trained on this dataset version, at this commit, with
   these params (and brand subset), the run stops here and skips the rest, registering nothing;
   the log says why. `force` trains anyway.
2. **train**: adapters and heads only; the base is checked unchanged.
3. **evaluate**: absolute, relative (the registry's `champion` scored on the same test rows; the
   TF-IDF baseline while there is none), behaviour, latency and safety gates.
   A failing gate fails the run here, with its report; the run is still tracked in MLflow.
4. **register**: MLflow run with params, metrics, dataset version, git commit, manifest SHA-256,
   adapter and pyfunc model; registry version of `creative-copy-scorer` with alias `challenger`.

Outputs live under `$CREATIVE_DATA_URI/runs/<logical date>/training/`.
"""


def _schedule():
    from ml.common.config import load_params

    cron = load_params()["training"]["schedule"]
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"),
                               assets=LABELLED_DATASET | DRIFT_DETECTED)


def _run_folder() -> tuple[str, str, str]:
    from ml.common import io
    from ml.common.audit import safe_key
    from ml.common.config import data_root

    ctx = get_current_context()
    when = ctx.get("logical_date") or ctx["dag_run"].run_after
    return io.join(data_root(), "runs", safe_key(when.isoformat()), "training"), when.isoformat(), ctx["run_id"]


def _brands(data: dict) -> list:
    """The brand subset the run trained on: empty when it took the whole dataset."""
    return data["brands"] if get_current_context()["params"]["brands"] else []


def _params() -> dict:
    from ml.common.config import load_params

    p, run = load_params(), get_current_context()["params"]
    chosen = {k: run[k] for k in ("lora_rank", "epochs") if run[k] is not None}  # null: params.yaml decides
    p["training"] = {**p["training"], **chosen}
    return p


@dag(
    dag_id="creative_training",
    schedule=_schedule(),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["creative", "training", "mlflow"],
    doc_md=DOC,
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(minutes=2)},
    params={
        "lora_rank": Param(None, type=["null", "integer"], minimum=1, maximum=64,
                           description="LoRA rank; empty = training.lora_rank of params.yaml"),
        "epochs": Param(None, type=["null", "integer"], minimum=1, maximum=50,
                        description="epochs; empty = training.epochs of params.yaml"),
        "dataset_version": Param("", type="string", pattern="^[0-9a-f]{0,64}$",
                                 description="labelled dataset version; empty = LATEST"),
        "brands": Param([], type="array", items={"type": "string", "minLength": 1},
                        description="train on these brands only; empty = all"),
        "force": Param(False, type="boolean",
                       description="train even when dataset, code and params are those of the champion"),
    },
)
def creative_training():
    @task
    def load_data() -> dict:
        from ml.common import io
        from ml.common.config import data_root
        from ml.training.data import prepare

        run = get_current_context()["params"]
        folder, _, _ = _run_folder()
        return prepare(io.join(data_root(), "datasets", "labelled"), run["dataset_version"] or None, run["brands"],
                       io.join(folder, "data"))

    @task.short_circuit
    def changed(data: dict) -> bool:
        """False (and the rest of the run skipped) when the champion was trained on this dataset
        version, at this commit, with these params: the nightly run has nothing to do."""
        import logging

        from ml.registry.tracking import unchanged_since_champion

        if get_current_context()["params"]["force"]:
            return True
        reason = unchanged_since_champion(data["version"], _params(), _brands(data))
        if reason:
            logging.getLogger("airflow.task").info("skipping the training: %s", reason)
        return reason is None

    @task
    def train(data: dict) -> dict:
        from ml.common import io
        from ml.training.train import train as run

        folder, _, _ = _run_folder()
        report = run(data["labelled"], io.join(folder, "model"), _params())
        return {k: report[k] for k in ("rows", "trainable_params", "total_params", "train_seconds", "outputs")}

    @task
    def evaluate(data: dict, trained: dict) -> dict:
        from ml.common import io
        from ml.evaluation.evaluate import evaluate as run
        from ml.registry.tracking import champion_adapter, track_and_register

        folder, _, run_id = _run_folder()
        params = _params()
        train_dir = io.join(folder, "model")
        champion, name = champion_adapter() or (None, "")
        report = run(train_dir, data["labelled"], io.join(folder, "evaluation"), params, champion=champion,
                     champion_name=name)
        if not report["passed"]:
            tracked = track_and_register(train_dir, io.join(folder, "evaluation"), labelled_uri=data["labelled"],
                                         dataset_version=data["version"], manifest_uri=data["manifest"],
                                         params=params, run_name=run_id, brands=_brands(data))
            raise AirflowFailException(f"evaluation gates failed (MLflow run {tracked['run_id']}): "
                                       f"{report['reasons'][:5]} (report: {report['outputs']['html']})")
        return {"passed": True, "metrics": report["metrics"], "outputs": report["outputs"]}

    @task
    def register(data: dict, evaluated: dict) -> dict:
        from ml.common import io
        from ml.registry.tracking import track_and_register

        folder, _, run_id = _run_folder()
        return track_and_register(io.join(folder, "model"), io.join(folder, "evaluation"), labelled_uri=data["labelled"],
                                  dataset_version=data["version"], manifest_uri=data["manifest"], params=_params(),
                                  run_name=run_id, brands=_brands(data))

    data = load_data()
    trained = train(data)
    changed(data) >> trained
    register(data, evaluate(data, trained))


dag_object = creative_training()
