"""Airflow with the CeleryExecutor on PostgreSQL and Redis, two workers, data only on the
loopback S3 server: the acquisition and labeling QA DAGs, triggered through the REST API,
finish successfully with tasks executed by both workers."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow
SYNTH = "synthetic://?seed=42&n=200"


def states(tis: list[dict]) -> dict:
    return {t["task_id"]: (t["state"], t["hostname"]) for t in tis}


def test_acquisition_and_labeling_run_on_both_workers_with_the_data_only_on_s3(stack):
    from ml.common import io

    ran_on = set()
    runs = [("creative_data_acquisition", "2026-11-02T00:00:00Z", {"sources": [f"{SYNTH}&image_size=32"]}),
            ("creative_labeling_qa", "2026-11-02T01:00:00Z", {"annotations": SYNTH, "gold": SYNTH})]
    for dag_id, when, conf in runs:
        run_id = stack.trigger(dag_id, when, conf)
        state, tis = stack.wait_run(dag_id, run_id)
        assert state == "success", (dag_id, states(tis), stack.tail("worker-1"), stack.tail("worker-2"))
        assert all(t["state"] in ("success", "skipped") for t in tis), states(tis)
        ran_on |= {t["hostname"] for t in tis if t["state"] == "success"}
    assert ran_on == {"worker-1", "worker-2"}, ran_on

    root = f"s3://{stack.bucket}/creative"
    for name in ("approved", "labelled"):
        latest = json.loads(io.read_text(f"{root}/datasets/{name}/LATEST.json"))
        assert latest["uri"].startswith(f"{root}/datasets/{name}/"), latest  # URIs on S3, no shared folder
        assert any(key.endswith(".parquet") for key in io.list_keys(latest["uri"]))
