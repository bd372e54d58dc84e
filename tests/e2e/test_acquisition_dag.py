"""The acquisition DAG end to end with dag.test(): real tasks, the embedded SQLite metadata DB."""
from __future__ import annotations

import json
import runpy
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from tests.unit.test_acquire import COPY

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "creative_data_acquisition.py"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dag():
    return runpy.run_path(str(DAG_FILE))["dag_object"]


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CREATIVE_DATA_URI", str(tmp_path / "data"))
    return tmp_path / "data"


def run(dag, day: int, sources: list[str]):
    when = datetime(2031, 3, day, tzinfo=timezone.utc)
    dr = dag.test(logical_date=when, run_conf={"sources": sources})
    return dr, {ti.task_id: ti.state for ti in dr.get_task_instances()}


def asset_events(data_root: Path) -> list:
    """Events of the approved dataset that point into this test's data folder."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        return [e.extra for e in session.query(AssetEvent).all()
                if str((e.extra or {}).get("uri", "")).startswith(str(data_root))]


def test_dag_runs_end_to_end_and_emits_the_dataset_event_once(dag, data_root, tmp_path):
    folder = tmp_path / "delivery"
    folder.mkdir()
    (folder / "copy.jsonl").write_text(json.dumps(COPY) + "\n{broken\n")
    sources = [str(folder), "synthetic://?seed=11&n=80&image_size=48"]
    dr, states = run(dag, 1, sources)
    assert dr.state == "success", states
    assert set(states.values()) == {"success"}

    run_dir = data_root / "runs" / "2031-03-01T00_00_00+00_00"
    report = json.loads((run_dir / "acquired" / "report.json").read_text())
    assert report["seen"] == report["accepted"] + report["quarantined"] >= 82
    assert report["quarantined_by_reason"]["schema_violation"] >= 1
    assert (run_dir / "contracts" / "ad_copy" / "validation.html").exists()
    latest = json.loads((data_root / "datasets" / "approved" / "LATEST.json").read_text())
    approved = pd.read_parquet(run_dir / "approved" / "approved.parquet")
    assert latest["assets"] == len(approved)
    assert (data_root / "datasets" / "approved" / latest["version"] / "approved_copy.parquet").exists()
    assert [e["version"] for e in asset_events(data_root)] == [latest["version"]]
    assert list((data_root / "ledger" / "licences").glob("*.jsonl"))

    # the same data on the next day: no new dataset version, so no Asset event
    dr2, states2 = run(dag, 2, sources)
    assert dr2.state == "success"
    assert states2["approved_changed"] == "success" and states2["announce"] == "skipped"
    assert len(asset_events(data_root)) == 1


def test_a_failing_contract_stops_the_run_before_publishing(dag, data_root, tmp_path):
    folder = tmp_path / "delivery"
    folder.mkdir()
    rows = [COPY, {**COPY, "copy_variant_id": "v2", "industry": "automotive"}]  # passes intake, not the contract
    (folder / "copy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    dr, states = run(dag, 3, [str(folder)])
    assert dr.state == "failed"
    assert states["validate_ad_copy"] == "failed" and states["validate_manifest"] == "success"
    assert states["publish"] == "upstream_failed" and states["announce"] in ("upstream_failed", "skipped")
    assert not (data_root / "datasets").exists()
    html = (data_root / "runs" / "2031-03-03T00_00_00+00_00" / "contracts" / "ad_copy" / "validation.html").read_text()
    assert "FAILED" in html and "automotive" in html
