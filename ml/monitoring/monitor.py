"""Drift monitoring of the serving models over one window of the prediction log.

``monitor_window(log_uri, start, end, out, params, cache_uri, audit_uri)``:
- reference: the champion's training data (the run's ``lineage/training_data.parquet``) with
  the champion's own scores on it; computed once per champion and kept under
  ``cache_uri/<version>.parquet``, then reused by every window;
- current: what the champion (and the canary, if any) answered in ``[start, end)``: the DAG
  passes its data interval, never "the last hour" by the wall clock;
- ``ml.monitoring.drift.drift`` on each, reports under ``out/champion`` and ``out/canary``;
- the figures go to MLflow (experiment ``creative-copy-scorer-monitoring``, tagged with the
  model version and the window);
- actions: champion drift → ``retrain`` (the DAG emits the Asset event training is scheduled
  on); canary drift → the canary is rolled back here.
A model with fewer than ``monitoring.drift.min_rows`` answers in the window gets no verdict.
"""
from __future__ import annotations

from datetime import datetime

import pandas as pd

from ml.common import io

EXPERIMENT = "creative-copy-scorer-monitoring"


def reference_for(version: str, cache_uri: str) -> pd.DataFrame:
    """The champion's training data with its scores; computed on first use, then read back."""
    cached = io.join(cache_uri, f"{version}.parquet")
    if io.exists(cached):
        return io.read_parquet(cached)
    import mlflow

    from ml.registry.tracking import MODEL_NAME, TRAINING_DATA
    from ml.training.model import Scorer

    run_id = mlflow.MlflowClient().get_model_version(MODEL_NAME, version).run_id
    frame = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"lineage/{TRAINING_DATA}"))
    adapter = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="adapter/adapter.npz")
    scores = Scorer.from_adapter(adapter).score_frame(frame)
    frame = frame.assign(p_on_voice=scores["brand_voice"], p_positive_engagement=scores["engagement"][:, 2])
    io.write_parquet(cached, frame)
    return frame


def monitor_window(log_uri: str, start: datetime, end: datetime, out: str, params: dict, cache_uri: str,
                   audit_uri: str) -> dict:
    import mlflow

    from ml.monitoring.drift import drift
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
    reference = reference_for(champion, cache_uri)
    log = read_window(log_uri, start, end)
    log = log[log["status"] == "ok"] if len(log) else log
    min_rows = params["monitoring"]["drift"]["min_rows"]
    for alias in ("champion", "canary"):
        version = aliases.get(alias)
        if not version:
            continue
        current = log[log["model_version"].astype(str) == str(version)] if len(log) else log
        if len(current) < min_rows:
            result["skipped"].append(f"{alias} v{version}: {len(current)} answers in the window < {min_rows}")
            continue
        report = drift(reference, current, io.join(out, alias), params)
        result[alias] = {"version": version, "dataset_drift": report["dataset_drift"],
                         "prediction_drift": report["prediction_drift"], "drifted_features": report["drifted_features"],
                         "rows": report["rows"], "report": report["outputs"]["html"]}
        configure(EXPERIMENT)
        with mlflow.start_run(run_name=f"{alias}-v{version}-{start:%Y%m%dT%H%M}",
                              tags={"model_version": version, "alias": alias, "window_start": start.isoformat(),
                                    "window_end": end.isoformat()}):
            mlflow.log_metrics({"dataset_drift": float(report["dataset_drift"]),
                                "drifted_share": report["drifted_share"], "rows": len(current),
                                **{f"drift_{k}": v["value"] for k, v in report["features"].items()}})
            mlflow.log_text(io.read_text(report["outputs"]["json"]), "drift.json")
    if result["champion"] and result["champion"]["dataset_drift"]:
        result["retrain"] = True
    canary = result["canary"]
    if canary and (canary["dataset_drift"] or canary["prediction_drift"]):
        release.rollback(release.Actor("creative_drift_monitoring", f"canary v{canary['version']} drifted in "
                                       f"{start.isoformat()}..{end.isoformat()}: {canary['drifted_features']}"),
                         audit_uri=audit_uri)
        result["rolled_back"] = True
    return result
