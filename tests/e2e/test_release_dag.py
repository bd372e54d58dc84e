"""The release DAG end to end with dag.test(): a real MLflow server, the scoring service as a
process with live traffic from the test, the release manager's approval given the way the
Airflow UI gives it (the HITL response handler of the REST API), canary analysis on the
prediction log, ramp and promotion; a degraded canary is rolled back by the DAG itself."""
from __future__ import annotations

import os
import runpy
import subprocess
import sys
import threading
import time
import uuid

import pandas as pd
import pytest
import requests
import yaml

from tests.conftest import REPO, free_port, wait_for_port

pytestmark = pytest.mark.slow
DAG_ID = "creative_model_release"


@pytest.fixture(scope="module")
def world(mlflow_server, register_variants, labelled_truth, tmp_path_factory):
    from ml.registry import release

    root = tmp_path_factory.mktemp("release-dag")
    data = root / "data"
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "CREATIVE_PARAMS", "CREATIVE_DATA_URI")}
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["release"]["canary"].update(weight=0.3, ramp=[0.3, 0.6, 1.0])
    # latency is judged by the unit tests: here the DAG, the MLflow server, the service and the
    # traffic share two cores, and the p95 of a few dozen requests is noise
    p["release"]["analysis"].update(min_requests=15, max_p95_ms=5000, max_p95_ratio=20)
    p["serving"].update(reload_seconds=1, log_flush_seconds=0.5)
    (root / "params.yaml").write_text(yaml.safe_dump(p))
    os.environ.update(MLFLOW_TRACKING_URI=mlflow_server, CREATIVE_PARAMS=str(root / "params.yaml"),
                      CREATIVE_DATA_URI=str(data))

    versions = register_variants(root, (0.0, 0.05, 4.0))  # champion, a close challenger, a far-off one
    release.start_canary(release.Actor("rm-alice", "first model"), audit_uri=str(data / "ledger" / "releases"),
                         ledger_uri=str(data / "ledger" / "licences"), weight=0.1, version=versions[0])

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ml", "serve", "--port", str(port), "--log-uri",
                             str(data / "predictions")], cwd=REPO, env=dict(os.environ),
                            stdout=open(root / "service.log", "wb"), stderr=subprocess.STDOUT)
    wait_for_port(port, proc, seconds=120)
    url = f"http://127.0.0.1:{port}"
    while requests.get(f"{url}/readyz", timeout=5).status_code != 200:
        time.sleep(0.5)

    stop = threading.Event()
    rows = pd.read_parquet(labelled_truth)  # varied copy, as real traffic is
    items = [{"text": f"{r.headline} {r.body}", "brand": r.brand, "industry": r.industry, "channel": r.channel,
              "audience": r.audience, "cta": r.cta} for r in rows.itertuples()]

    def traffic():  # live, bounded: stops with the module or after 10 minutes
        session, deadline, i = requests.Session(), time.monotonic() + 600, 0
        while not stop.is_set() and time.monotonic() < deadline:
            session.post(f"{url}/v1/score", json={"items": [items[i % len(items)]], "request_key": uuid.uuid4().hex},
                         timeout=30)
            i += 1

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    dag = runpy.run_path(str(REPO / "dags" / f"{DAG_ID}.py"))["dag_object"]
    yield {"dag": dag, "versions": versions, "audit": str(data / "ledger" / "releases"), "url": url}
    stop.set()
    thread.join(timeout=60)
    proc.terminate()
    proc.wait(timeout=30)
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def answer_when_asked(option: str, reason: str, user: str, timeout: float = 180) -> threading.Thread:
    """Respond to the approval task as the Airflow UI does: through the HITL response handler of
    the REST API, on the same metadata database, once the task waits for input."""
    def respond():
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with create_session() as session:
                ti = session.query(TaskInstance).filter_by(dag_id=DAG_ID, task_id="approve",
                                                            state=TaskInstanceState.AWAITING_INPUT).first()
                if ti is not None:
                    update_hitl_detail(dag_id=DAG_ID, dag_run_id=ti.run_id, task_id="approve",
                                       update_hitl_detail_payload=UpdateHITLDetailPayload(
                                           chosen_options=[option], params_input={"reason": reason}),
                                       user=SimpleAuthManagerUser(username=user, role="admin"), session=session)
                    return
            time.sleep(0.5)

    thread = threading.Thread(target=respond, daemon=True)
    thread.start()
    return thread


def run(dag, **conf):
    dr = dag.test(run_conf={"step_minutes": 0.2, **conf})
    return dr, {ti.task_id: ti.state for ti in dr.get_task_instances()}


def test_an_approved_healthy_canary_ramps_up_and_becomes_champion(world):
    from ml.registry import release

    v1, v2, _ = world["versions"]
    answer_when_asked("Approve", "better brand voice in home", "rm-erin")
    dr, states = run(world["dag"], version=v2)
    assert dr.state == "success", (states, release.history(world["audit"], 2))
    assert release.state()["aliases"] == {"champion": v2, "previous": v1, "challenger": world["versions"][2]}
    entries = [e for e in release.history(world["audit"], 100) if e["action"] != "first_champion"]
    assert [e["action"] for e in entries] == ["start_canary", "set_weight", "promote"]
    assert entries[0]["who"] == "rm-erin" and entries[0]["reason"] == "better brand voice in home"
    assert entries[1]["canary_weight"] == {"from": 0.3, "to": 0.6}
    assert entries[2]["aliases"]["previous"] == {"from": None, "to": v1}


def test_a_degraded_canary_is_rolled_back_and_the_run_fails(world):
    from ml.registry import release

    _, v2, v3 = world["versions"]
    answer_when_asked("Approve", "try the new head", "rm-erin")
    dr, states = run(world["dag"], version=v3)
    assert dr.state == "failed" and states["analyse_1"] == "failed", states
    assert states["start_canary"] == "success"
    assert release.state()["aliases"]["champion"] == v2 and "canary" not in release.state()["aliases"]
    last = release.history(world["audit"], 1)[-1]
    assert last["action"] == "abort_canary" and "p_on_voice distribution moved" in last["reason"]


def test_a_rejected_release_changes_nothing(world):
    from ml.registry import release

    before, n = release.state(), len(release.history(world["audit"], 100))
    answer_when_asked("Reject", "not this week", "rm-frank")
    dr, states = run(world["dag"], version=world["versions"][2])
    assert states["approve"] == "success" and states["start_canary"] == "skipped", states
    assert release.state() == before and len(release.history(world["audit"], 100)) == n


def test_a_rollback_run_restores_the_previous_champion_and_records_who(world):
    from ml.registry import release

    v1, v2, _ = world["versions"]
    assert release.state()["aliases"]["champion"] == v2
    dr, states = run(world["dag"], action="rollback", reason="complaints about tone in fashion")
    assert dr.state == "success" and states["rollback"] == "success" and states["candidate"] == "skipped", states
    assert release.state()["aliases"]["champion"] == v1
    last = release.history(world["audit"], 1)[-1]
    assert last["action"] == "rollback" and last["who"] == "dag_test"  # the triggering user
    assert last["reason"] == "complaints about tone in fashion"
