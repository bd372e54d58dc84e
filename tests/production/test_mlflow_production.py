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


REGISTER = """
import json, sys
from ml.registry.tracking import track_and_register
a = json.loads(sys.argv[1])
print(json.dumps(track_and_register(a["train"], a["eval"], labelled_uri=a["labelled"], dataset_version="v2",
                                    manifest_uri=a["manifest"], params=a["params"])))
"""


def test_an_unreachable_tracking_server_during_registration_leaves_exactly_one_version(
        mlflow_production, trained, labelled_truth, tiny_params, tmp_path):
    """The register task loses the tracking server half-way (the server stops answering); its
    retry, a new process as Airflow's would be, finishes the job: one version in the end."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    import mlflow
    import psycopg2

    from ml.evaluation.evaluate import evaluate
    from ml.registry.tracking import MODEL_NAME
    from tests.conftest import REPO, adapter_variant

    params = {**tiny_params, "evaluation": {**tiny_params["evaluation"], **LENIENT}}
    folder = adapter_variant(trained["outputs"]["adapter"].rsplit("/", 1)[0], str(tmp_path / "train"), 0.3)
    evaluate(folder, labelled_truth, str(tmp_path / "eval"), params)
    (tmp_path / "approved.parquet").write_bytes(b"manifest 2")
    args = json.dumps({"train": folder, "eval": str(tmp_path / "eval"), "labelled": labelled_truth,
                       "manifest": str(tmp_path / "approved.parquet"), "params": params})
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_production["url"], "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    env.pop("CREATIVE_MLFLOW_ARTIFACTS", None)
    client = mlflow.MlflowClient(mlflow_production["url"])
    before = len(client.search_model_versions(f"name = '{MODEL_NAME}'"))

    def runs() -> int:
        with psycopg2.connect(host="127.0.0.1", user="postgres", dbname=mlflow_production["database"]) as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM runs")
                return cur.fetchone()[0]

    started = runs()

    def outage():  # as soon as the first attempt's run exists, the server stops answering for 20 s
        deadline = time.monotonic() + 300
        while runs() == started and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(mlflow_production["pgid"], signal.SIGSTOP)
        time.sleep(20)
        os.killpg(mlflow_production["pgid"], signal.SIGCONT)

    thread = threading.Thread(target=outage)
    thread.start()
    first = subprocess.run([sys.executable, "-c", REGISTER, args], cwd=REPO, env=env, capture_output=True, text=True)
    thread.join()
    assert first.returncode != 0, "the first attempt should have failed while the server did not answer"
    retry = subprocess.run([sys.executable, "-c", REGISTER, args], cwd=REPO, env=env, capture_output=True, text=True)
    assert retry.returncode == 0, retry.stderr[-3000:]
    result = json.loads(retry.stdout.strip().splitlines()[-1])
    assert result["registered"]
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    assert len(versions) == before + 1, [(v.version, v.tags.get("training_key")) for v in versions]
    assert client.get_model_version_by_alias(MODEL_NAME, "challenger").version == result["version"]
    # a task retried after it had in fact registered (the answer was lost) registers nothing new
    again = subprocess.run([sys.executable, "-c", REGISTER, args], cwd=REPO, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.strip().splitlines()[-1])["version"] == result["version"]
    assert json.loads(again.stdout.strip().splitlines()[-1])["run_id"] == result["run_id"]
    assert len(client.search_model_versions(f"name = '{MODEL_NAME}'")) == before + 1
