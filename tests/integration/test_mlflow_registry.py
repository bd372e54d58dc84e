"""Tracking and registration against a real MLflow tracking server on loopback (SQLite backend,
local artifact root): every training is a run; only a passing one becomes a registry version
with its tags and the alias ``challenger``, and it loads back with mlflow.pyfunc."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


pytestmark = pytest.mark.slow

from tests.conftest import LENIENT


def evaluated(trained, labelled_truth, params, tmp_path, thresholds):
    from ml.evaluation.evaluate import evaluate

    p = {**params, "evaluation": {**params["evaluation"], **thresholds}}
    train_dir = trained["outputs"]["adapter"].rsplit("/", 1)[0]
    return train_dir, evaluate(train_dir, labelled_truth, str(tmp_path / "eval"), p)


def test_a_passing_model_is_registered_with_tags_and_alias_and_loads_with_pyfunc(
        tracking, trained, labelled_truth, tiny_params, tmp_path):
    import mlflow

    from ml.registry.tracking import MODEL_NAME, track_and_register
    from ml.training.model import Scorer

    train_dir, evaluation = evaluated(trained, labelled_truth, tiny_params, tmp_path, LENIENT)
    assert evaluation["passed"]
    manifest = tmp_path / "approved.parquet"
    manifest.write_bytes(b"the licence-approved manifest")
    result = track_and_register(train_dir, str(tmp_path / "eval"), labelled_uri=labelled_truth, dataset_version="md5-of-labelled",
                                manifest_uri=str(manifest), params=tiny_params, run_name="test")
    assert result["registered"] and result["alias"] == "challenger"

    client = mlflow.MlflowClient(tracking)
    version = client.get_model_version_by_alias(MODEL_NAME, "challenger")
    assert version.version == result["version"]
    import hashlib
    assert version.tags["licence_manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert version.tags["dataset_version"] == "md5-of-labelled" and version.tags["gate_passed"] == "true"
    assert len(version.tags["git_commit"]) in (40, len("unknown"))
    assert "gate_macro_f1" in version.tags

    run = client.get_run(result["run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "creative-copy-scorer"
    assert run.data.metrics["trainable_params"] == trained["trainable_params"]
    assert run.data.metrics["total_params"] == trained["total_params"]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [0]  # one epoch
    assert run.data.params["dataset_version"] == "md5-of-labelled"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"adapter", "evaluation", "train", "lineage"} <= artifacts
    lineage = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/lineage/assets.json")
    assert lineage["asset_ids"] == sorted(pd.read_parquet(labelled_truth)["asset_id"].unique())

    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@challenger")
    rows = pd.read_parquet(labelled_truth).head(5)
    out = model.predict(rows[["brand", "industry", "channel", "audience", "cta", "headline", "body"]])
    assert list(out.columns) == ["p_negative_engagement", "p_neutral", "p_positive_engagement", "p_on_voice"]
    expected = Scorer.from_adapter(trained["outputs"]["adapter"]).score_frame(rows)
    np.testing.assert_allclose(out["p_on_voice"], expected["brand_voice"], atol=1e-5)
    assert model.metadata.signature is not None


def test_a_failing_model_is_tracked_but_not_registered(tracking, trained, labelled_truth, tiny_params, tmp_path):
    import mlflow

    from ml.registry.tracking import MODEL_NAME, track_and_register

    strict = {**LENIENT, "min_macro_f1": 0.99}
    train_dir, evaluation = evaluated(trained, labelled_truth, tiny_params, tmp_path, strict)
    assert not evaluation["passed"]
    client = mlflow.MlflowClient(tracking)
    before = len(client.search_model_versions(f"name='{MODEL_NAME}'"))
    manifest = tmp_path / "approved.parquet"
    manifest.write_bytes(b"m")
    result = track_and_register(train_dir, str(tmp_path / "eval"), labelled_uri=labelled_truth, dataset_version="v", manifest_uri=str(manifest),
                                params=tiny_params)
    assert not result["registered"]
    assert client.get_run(result["run_id"]).data.tags["gate_passed"] == "false"
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == before


def test_the_relative_gate_scores_the_registry_champion_on_the_same_test_rows(
        tracking, trained, labelled_truth, tiny_params, tmp_path):
    import mlflow

    from ml.evaluation.evaluate import evaluate
    from ml.registry.tracking import MODEL_NAME, champion_adapter, track_and_register

    assert champion_adapter() is None  # the first model: no champion, the baseline is the reference
    train_dir, _ = evaluated(trained, labelled_truth, tiny_params, tmp_path, LENIENT)
    manifest = tmp_path / "approved.parquet"
    manifest.write_bytes(b"m")
    result = track_and_register(train_dir, str(tmp_path / "eval"), labelled_uri=labelled_truth, dataset_version="v", manifest_uri=str(manifest),
                                params=tiny_params)
    client = mlflow.MlflowClient(tracking)
    assert "evaluation/slices.csv" in {a.path for a in client.list_artifacts(result["run_id"], "evaluation")}
    client.set_registered_model_alias(MODEL_NAME, "champion", result["version"])

    path, name = champion_adapter()
    assert name == f"the champion (version {result['version']})"
    assert open(path, "rb").read() == open(trained["outputs"]["adapter"], "rb").read()
    # the same adapter as champion and challenger: every slice is compared and none moved
    strict = {**LENIENT, "min_slice_n": 1, "max_slice_drop": 0.0}
    p = {**tiny_params, "evaluation": {**tiny_params["evaluation"], **strict}}
    report = evaluate(train_dir, labelled_truth, str(tmp_path / "again"), p, champion=path, champion_name=name)
    relative = report["gates"]["relative"]
    assert report["reference"] == name and relative["passed"], relative
    assert relative["metrics"]["slices_compared"] == len(pd.read_csv(tmp_path / "again" / "slices.csv"))
