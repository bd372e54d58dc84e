"""MLflow in the production configuration: the tracking server keeps its runs and registry in
PostgreSQL and its artifacts on the S3 server; a training run registers a model there, and the
registered model loads back through the server."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import LENIENT

pytestmark = pytest.mark.slow


def test_a_training_run_registers_a_model_with_postgres_and_s3(mlflow_production, trained, labelled_truth,
                                                                tiny_params, tmp_path, monkeypatch):
    import mlflow
    import psycopg2

    from ml.common import io
    from ml.evaluation.evaluate import evaluate
    from ml.registry.tracking import MODEL_NAME, track_and_register
    from ml.training.model import Scorer

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_production["url"])
    monkeypatch.delenv("CREATIVE_MLFLOW_ARTIFACTS", raising=False)
    params = {**tiny_params, "evaluation": {**tiny_params["evaluation"], **LENIENT}}
    train_dir = trained["outputs"]["adapter"].rsplit("/", 1)[0]
    assert evaluate(train_dir, labelled_truth, str(tmp_path / "eval"), params)["passed"]
    (tmp_path / "approved.parquet").write_bytes(b"manifest")
    result = track_and_register(train_dir, str(tmp_path / "eval"), labelled_uri=labelled_truth, dataset_version="v1",
                                manifest_uri=str(tmp_path / "approved.parquet"), params=params, run_name="production")
    assert result["registered"] and result["version"] == "1"

    with psycopg2.connect(host="127.0.0.1", user="postgres", dbname=mlflow_production["database"]) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT name, version FROM model_versions")
            assert cur.fetchall() == [(MODEL_NAME, 1)]
            cur.execute("SELECT artifact_uri FROM runs WHERE run_uuid = %s", (result["run_id"],))
            assert cur.fetchone()[0].startswith("mlflow-artifacts:/")  # served by the tracking server
    keys = list(io.list_keys(f"s3://{mlflow_production['bucket']}/artifacts/"))
    assert any(k.endswith("/adapter/adapter.npz") for k in keys) and any(k.endswith("/MLmodel") for k in keys), keys[:20]

    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@challenger")
    rows = pd.read_parquet(labelled_truth).head(3)
    answer = model.predict(rows[["brand", "industry", "channel", "audience", "cta", "headline", "body"]])
    expected = Scorer.from_adapter(trained["outputs"]["adapter"]).score_frame(rows)
    np.testing.assert_allclose(answer["p_on_voice"], expected["brand_voice"], atol=1e-5)
