"""The labeling QA DAG end to end with dag.test(): it labels the published approved dataset,
publishes the labelled dataset and emits its Asset event; a bad batch fails before publishing."""
from __future__ import annotations

import json
import runpy
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "creative_labeling_qa.py"
SYNTH = "synthetic://?seed=42&n=200"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dag():
    return runpy.run_path(str(DAG_FILE))["dag_object"]


@pytest.fixture
def data_root(tmp_path, monkeypatch, params):
    """An approved dataset published the way the acquisition DAG does it."""
    from ml.data.acquire import acquire
    from ml.data.publish import publish_dataset
    from ml.licensing.gate import licence_check

    root = tmp_path / "data"
    monkeypatch.setenv("CREATIVE_DATA_URI", str(root))
    acquire([f"{SYNTH}&image_size=32"], str(tmp_path / "acq"), logical_date="2031-04-01", params=params)
    licence_check(str(tmp_path / "acq" / "manifest.parquet"), str(tmp_path / "app"), logical_date="2031-04-01",
                  run_id="t", ledger_uri=str(root / "ledger" / "licences"), params=params)
    publish_dataset(str(tmp_path / "app"), str(root / "datasets" / "approved"), logical_date="2031-04-01", run_id="t")
    return root


def labelled_events(data_root: Path) -> list:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return [e.extra for e, a in session.query(AssetEvent, AssetModel).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                if a.name == "creative_labelled_dataset" and str((e.extra or {}).get("uri", "")).startswith(str(data_root))]


def run(dag, day: int, **conf):
    dr = dag.test(logical_date=datetime(2031, 4, day, tzinfo=timezone.utc),
                  run_conf={"annotations": SYNTH, "gold": SYNTH, **conf})
    return dr, {ti.task_id: ti.state for ti in dr.get_task_instances()}


def test_dag_labels_the_latest_dataset_publishes_and_announces(dag, data_root):
    dr, states = run(dag, 1)
    assert dr.state == "success", states
    assert set(states.values()) == {"success"}
    latest = json.loads((data_root / "datasets" / "labelled" / "LATEST.json").read_text())
    labelled = pd.read_parquet(Path(latest["uri"]) / "labelled.parquet")
    assert latest["items"] == len(labelled) > 50
    approved = json.loads((data_root / "datasets" / "approved" / "LATEST.json").read_text())
    assert set(labelled["asset_id"]) <= set(pd.read_parquet(Path(approved["uri"]) / "approved_copy.parquet")["asset_id"])
    report = json.loads((data_root / "runs" / "2031-04-01T00_00_00+00_00" / "labels" / "qa_report.json").read_text())
    assert report["passed"] and report["inputs"]["dataset"] == approved["uri"]
    assert [e["version"] for e in labelled_events(data_root)] == [latest["version"]]
    assert list((data_root / "ledger" / "labeling").glob("*.jsonl"))


def test_a_bad_batch_fails_the_run_and_publishes_nothing(dag, data_root):
    dr, states = run(dag, 2, annotations=f"{SYNTH}&crowd=bad")
    assert dr.state == "failed"
    assert states["label_qa"] == "failed" and states["publish"] == "upstream_failed"
    assert not (data_root / "datasets" / "labelled").exists()
    html = (data_root / "runs" / "2031-04-02T00_00_00+00_00" / "labels" / "qa_report.html").read_text()
    assert "FAILED" in html
    assert labelled_events(data_root) == []
