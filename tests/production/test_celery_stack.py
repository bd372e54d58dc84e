"""Airflow with the CeleryExecutor on PostgreSQL and Redis, two workers, data only on the
loopback S3 server (one stack for the module):
- the acquisition and labeling QA DAGs, triggered through the REST API, finish successfully
  with tasks executed by both workers;
- a Celery worker killed in the middle of a task: the task is retried on the other worker and
  the run succeeds, with no duplicate manifest rows and no half-written file visible;
- the S3 server stopped in the middle of acquisition: the task fails and is retried, and once
  the server is back the run completes, with nothing lost or duplicated."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pandas as pd
import pytest

pytestmark = pytest.mark.slow
SYNTH = "synthetic://?seed=42&n=200"
SOURCE = "synthetic://?seed=5&n=500&image_size=96"  # an acquire task that runs for several seconds
STACK_ENV = {
    # a task whose worker died is noticed after 20 s instead of 5 minutes
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
    # an unanswered S3 call fails after 2 attempts of 8 s instead of 5 of 60 s
    "CREATIVE_S3_MAX_ATTEMPTS": "2", "CREATIVE_S3_READ_TIMEOUT": "8",
}


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


def wait_running(stack, dag_id: str, run_id: str, task_id: str, seconds: float = 300) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ti = stack.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        if ti["state"] == "running" and ti.get("hostname"):
            return ti
        time.sleep(0.5)
    raise AssertionError(f"{task_id} did not start in {seconds} s: {ti}")


def tries(stack, dag_id: str, run_id: str, task_id: str) -> list[dict]:
    return stack.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")["task_instances"]


def check_outputs(stack, when_key: str) -> dict:
    """The run's outputs on S3: every table and report readable; the manifest without duplicates
    and matching the report's count."""
    from ml.common import io

    run = f"s3://{stack.bucket}/creative/runs/{when_key}"
    for key in io.list_keys(run):
        if key.endswith(".parquet"):
            io.read_parquet(key)
        elif key.endswith(".json"):
            json.loads(io.read_text(key))
    report = json.loads(io.read_text(f"{run}/acquired/report.json"))
    manifest = io.read_parquet(f"{run}/acquired/manifest.parquet")
    assert manifest["asset_id"].is_unique and len(manifest) == report["accepted"], report
    assert report["seen"] == report["accepted"] + report["quarantined"]
    return report


def moto_pid(endpoint: str) -> int:
    port = endpoint.rsplit(":", 1)[1]
    out = subprocess.run(["pgrep", "-f", f"moto.server -H 127.0.0.1 -p {port}"], capture_output=True, text=True)
    return int(out.stdout.split()[0])


def test_a_worker_killed_mid_task_is_replaced_by_the_other(stack):
    run_id = stack.trigger("creative_data_acquisition", "2026-11-03T00:00:00Z", {"sources": [SOURCE]})
    victim = wait_running(stack, "creative_data_acquisition", run_id, "acquire")["hostname"]
    assert len(stack.kill(victim)) >= 3, "the worker, its pool process and the task's supervisor"
    state, tis = stack.wait_run("creative_data_acquisition", run_id)
    assert state == "success", {t["task_id"]: t["state"] for t in tis}
    attempts = tries(stack, "creative_data_acquisition", run_id, "acquire")
    assert [a["hostname"] for a in attempts][0] == victim and attempts[-1]["state"] == "success"
    assert attempts[-1]["hostname"] != victim and len(attempts) >= 2, attempts
    check_outputs(stack, "2026-11-03T00_00_00+00_00")
    stack.restart(victim)


def test_an_s3_outage_mid_acquisition_fails_the_try_and_the_retry_completes(stack, s3_server, params, tmp_path):
    from ml.common import io
    from ml.data.acquire import acquire

    moto = moto_pid(s3_server)
    run_id = stack.trigger("creative_data_acquisition", "2026-11-04T00:00:00Z", {"sources": [SOURCE]})
    wait_running(stack, "creative_data_acquisition", run_id, "acquire")
    os.kill(moto, signal.SIGSTOP)  # the server is there but answers nothing
    try:
        deadline = time.monotonic() + 240
        while tries(stack, "creative_data_acquisition", run_id, "acquire")[0]["state"] == "running":
            assert time.monotonic() < deadline, "the try did not fail while S3 was down"
            time.sleep(1)
    finally:
        os.kill(moto, signal.SIGCONT)
    first = tries(stack, "creative_data_acquisition", run_id, "acquire")[0]
    assert first["state"] in ("up_for_retry", "failed"), first
    state, tis = stack.wait_run("creative_data_acquisition", run_id)
    assert state == "success", {t["task_id"]: t["state"] for t in tis}
    assert tries(stack, "creative_data_acquisition", run_id, "acquire")[-1]["try_number"] >= 2
    report = check_outputs(stack, "2026-11-04T00_00_00+00_00")
    # nothing lost or duplicated: the manifest is the one the same source gives without faults
    acquire([SOURCE], str(tmp_path / "acq"), logical_date="2026-11-04", params=params)
    expected = pd.read_parquet(tmp_path / "acq" / "manifest.parquet")
    now = io.read_parquet(f"s3://{stack.bucket}/creative/runs/2026-11-04T00_00_00+00_00/acquired/manifest.parquet")
    assert sorted(now["asset_id"]) == sorted(expected["asset_id"]) and report["accepted"] == len(expected)
