"""Shared fixtures. Real parts on loopback: the S3 server is moto's server mode in its own
process, Airflow runs in process on the SQLite database that `make` migrated."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".local" / "airflow"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def params():
    from ml.common.config import load_params

    return load_params()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server as a separate process on loopback; yields its endpoint URL."""
    port = free_port()
    log = open(REPO / ".local" / f"moto-{port}.log", "wb") if (REPO / ".local").is_dir() else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("moto server did not start")
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from ml.common import io

    io.s3_client.cache_clear()
    yield endpoint
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    io.s3_client.cache_clear()
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def bucket(s3_server, request):
    from ml.common import io

    name = "t-" + request.node.name.lower().replace("_", "-")[:50]
    io.s3_client().create_bucket(Bucket=name)
    return name


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def wait_for_port(port: int, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"nothing listens on port {port} after {seconds} s")


@pytest.fixture(scope="session")
def tiny_params(params):
    """A training configuration small enough for the CPU inside the suite."""
    return {**params, "training": {**params["training"], "epochs": 1, "batch_size": 16, "max_seq_len": 24}}


def truth_frame(uri: str, params: dict):
    """The copy rows of a synthetic source labelled with the generator's hidden truth."""
    import pandas as pd

    from ml.data.sources import open_source

    data = open_source(uri, params).data
    rows = [json.loads(line) for line in data.read("copy.jsonl").decode().splitlines()]
    return pd.DataFrame(rows).assign(
        asset_id=lambda f: f["copy_variant_id"],
        engagement_label=lambda f: f["copy_variant_id"].map(lambda i: data.truth[i]["engagement_label"]),
        brand_voice=lambda f: f["copy_variant_id"].map(lambda i: data.truth[i]["brand_voice"]))


@pytest.fixture(scope="session")
def labelled_truth(tmp_path_factory, params):
    """A labelled.parquet of hidden-truth labels, small enough for tiny trainings."""
    uri = tmp_path_factory.mktemp("labelled") / "labelled.parquet"
    truth_frame("synthetic://?seed=8&n=240&copy_share=0.5&problem_share=0", params).to_parquet(uri)
    return str(uri)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, labelled_truth, tiny_params):
    """One tiny training run (its train_report)."""
    from ml.training.train import train

    return train(labelled_truth, str(tmp_path_factory.mktemp("train") / "a"), tiny_params)


# evaluation thresholds every model passes: for tests of what happens after the gates
LENIENT = {"min_macro_f1": 0.0, "min_voice_accuracy": 0.0, "min_industries": 0, "min_slice_n": 10**6, "max_ece": 1.0,
           "max_slice_drop": 1.0, "invariance_tolerance": 1.0, "min_direction_pass_rate": 0.0,
           "min_mft_pass_rate": 0.0, "max_p95_ms": {1: 10**6, 4: 10**6}, "latency_calls": 5, "max_findings": 10**6}


def adapter_variant(train_dir: str, out_dir: str, voice_bias: float) -> str:
    """A copy of a train output folder whose brand-voice head is shifted by ``voice_bias`` (in
    logits): another model to register, with scores that differ by a known amount."""
    import shutil

    import numpy as np

    shutil.copytree(train_dir, out_dir)
    with np.load(f"{train_dir}/adapter.npz") as data:
        weights = {k: data[k] for k in data.files}
    key = next(k for k in weights if k.startswith("brand_voice") and k.endswith("bias"))
    weights[key] = weights[key] + np.float32(voice_bias)
    np.savez(f"{out_dir}/adapter.npz", **weights)
    return out_dir


@pytest.fixture(scope="session")
def register_variants(trained, labelled_truth, tiny_params, tmp_path_factory):
    """``register(root, biases)``: registers one variant of the tiny model per voice bias (variant i
    in ``root/train<i>``) in the tracking server of ``MLFLOW_TRACKING_URI`` and returns the
    versions, in order. For tests of what happens after the gates: every variant carries the lenient evaluation of the
    unshifted model, made once per session (a model's evaluation is itself tested elsewhere)."""
    from ml.evaluation.evaluate import evaluate
    from ml.registry.tracking import track_and_register

    train_dir = trained["outputs"]["adapter"].rsplit("/", 1)[0]
    lenient = {**tiny_params, "evaluation": {**tiny_params["evaluation"], **LENIENT}}
    evaluation = str(tmp_path_factory.mktemp("lenient-evaluation"))
    assert evaluate(train_dir, labelled_truth, evaluation, lenient)["passed"]

    def register(root: Path, biases) -> list[str]:
        (root / "approved.parquet").write_bytes(b"manifest")
        return [track_and_register(adapter_variant(train_dir, str(root / f"train{i}"), bias), evaluation,
                                   labelled_uri=labelled_truth, dataset_version="v",
                                   manifest_uri=str(root / "approved.parquet"), params=lenient)["version"]
                for i, bias in enumerate(biases)]

    return register


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server on loopback (SQLite backend, local artifact store), one per module."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                             "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
                            stdout=open(root / "server.log", "wb"), stderr=subprocess.STDOUT)
    wait_for_port(port, proc, seconds=120)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def tracking(mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    return mlflow_server
