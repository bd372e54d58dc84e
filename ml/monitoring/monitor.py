"""Drift monitoring of the serving models over one window of the prediction log.

``monitor_window(log_uri, start, end, out, params, cache_uri, audit_uri)``:
- reference: the champion's training data (the run's ``lineage/training_data.parquet``) with
  the champion's own scores on it, reduced to what drift needs (features, sample embeddings);
  computed once per champion and kept under ``cache_uri/<version>/``, then reused by every
  window (rebuilt only when the feature definitions or drift settings change);
- current: what the champion (and the canary, if any) answered in ``[start, end)``: the DAG
  passes its data interval, never "the last hour" by the wall clock;
- ``ml.monitoring.drift.drift`` on each, reports under ``out/champion`` and ``out/canary``;
- the figures go to MLflow (experiment ``creative-copy-scorer-monitoring``, tagged with the
  model version and the window);
- target drift: the outcome feed of the window (``outcomes_uri``, hourly parts in the prediction
  log's layout: ``ts``, ``copy_variant_id``, ``impressions``, ``clicks``, ``conversions``), when
  it has rows, against the reference's click-through and conversion rates;
- actions: champion drift (inputs or target) → ``retrain`` (the DAG emits the Asset event training is scheduled
  on); canary drift → the canary is rolled back here.
A model with fewer than ``monitoring.drift.min_rows`` answers in the window gets no verdict.
"""
from __future__ import annotations

from datetime import datetime

import pandas as pd

from ml.common import io
from ml.monitoring.drift import Reference, drift

EXPERIMENT = "creative-copy-scorer-monitoring"
OUTCOME_COLUMNS = ["ts", "copy_variant_id", "impressions", "clicks", "conversions"]


def reference_for(version: str, cache_uri: str, params: dict) -> Reference:
    """The champion's reference (features of its training data with its own scores, sample
    embeddings): built on first use, then read back by every window."""
    folder = io.join(cache_uri, str(version))
    cached = Reference.load(folder, params)
    if cached is not None:
        return cached
    import mlflow

    from ml.registry.tracking import MODEL_NAME, TRAINING_DATA
    from ml.training.model import Scorer

    run_id = mlflow.MlflowClient().get_model_version(MODEL_NAME, version).run_id
    frame = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"lineage/{TRAINING_DATA}"))
    adapter = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="adapter/adapter.npz")
    scores = Scorer.from_adapter(adapter).score_frame(frame)
    frame = frame.assign(p_on_voice=scores["brand_voice"], p_positive_engagement=scores["engagement"][:, 2])
    reference = Reference.build(frame, params)
    reference.save(folder)
    return reference


def monitor_window(log_uri: str, start: datetime, end: datetime, out: str, params: dict, cache_uri: str,
                   audit_uri: str, outcomes_uri: str | None = None) -> dict:
    import mlflow

    from ml.registry import release
    from ml.registry.tracking import configure
    from ml.serving.predlog import read_window

    configure()
    aliases = release.state()["aliases"]
    champion = aliases.get("champion")
    result = {"window": [start.isoformat(), end.isoformat()], "champion": None, "canary": None,
              "retrain": False, "rolled_back": False, "skipped": []}
    if not champion:
        result["skipped"].append("no champion in the registry")
        return result
    reference = reference_for(champion, cache_uri, params)
    log = read_window(log_uri, start, end)
    log = log[log["status"] == "ok"] if len(log) else log
    outcomes = read_window(outcomes_uri, start, end, OUTCOME_COLUMNS) if outcomes_uri else None
    min_rows = params["monitoring"]["drift"]["min_rows"]
    for alias in ("champion", "canary"):
        version = aliases.get(alias)
        if not version:
            continue
        current = log[log["model_version"].astype(str) == str(version)] if len(log) else log
        if len(current) < min_rows:
            result["skipped"].append(f"{alias} v{version}: {len(current)} answers in the window < {min_rows}")
            continue
        report = drift(reference, current, io.join(out, alias), params, outcomes if alias == "champion" else None)
        result[alias] = {"version": version, "dataset_drift": report["dataset_drift"],
                         "prediction_drift": report["prediction_drift"], "target_drift": report["target_drift"],
                         "drifted_features": report["drifted_features"],
                         "rows": report["rows"], "report": report["outputs"]["html"]}
        configure(EXPERIMENT)
        with mlflow.start_run(run_name=f"{alias}-v{version}-{start:%Y%m%dT%H%M}",
                              tags={"model_version": version, "alias": alias, "window_start": start.isoformat(),
                                    "window_end": end.isoformat()}):
            mlflow.log_metrics({"dataset_drift": float(report["dataset_drift"]),
                                "drifted_share": report["drifted_share"], "rows": len(current),
                                **{f"drift_{k}": v["value"] for k, v in report["features"].items()},
                                **{f"target_drift_{k}": v["value"] for k, v in report["target"].items()}})
            mlflow.log_text(io.read_text(report["outputs"]["json"]), "drift.json")
    if result["champion"] and (result["champion"]["dataset_drift"] or result["champion"]["target_drift"]):
        result["retrain"] = True
    canary = result["canary"]
    if canary and (canary["dataset_drift"] or canary["prediction_drift"]):
        release.rollback(release.Actor("creative_drift_monitoring", f"canary v{canary['version']} drifted in "
                                       f"{start.isoformat()}..{end.isoformat()}: {canary['drifted_features']}"),
                         audit_uri=audit_uri)
        result["rolled_back"] = True
    return result
