"""Wiring of the release DAG. Task bodies call one function of ``ml`` each."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, PokeReturnValue, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

DOC = """
### Creative model release

Takes the registry's `challenger` (or the version in the `version` param) to production:

1. **candidate**: the version must have passed its evaluation gates, must not be blocked, and
   must not have been trained on an asset the licence ledger now refuses (the refusal names them).
2. **approve**: a release manager approves or rejects in the Airflow UI (Browse → Required
   Actions), with a reason. Reject skips everything after; no answer in time fails the run.
   Nothing is promoted without this recorded approval.
3. **start_canary**: the version becomes `canary` with `release.canary.weight` of the traffic
   (the first model of all, with no champion to compare with, becomes `champion`).
4. **wait_N / analyse_N**, once per ramp step (`release.canary.ramp` in `params.yaml`): after
   `step_minutes` of traffic (and `analysis.min_requests` on both models, waiting up to
   `max_wait_minutes` for them), the canary is judged against the champion on the prediction log of
   that window (error rate, latency p95, score distribution shift). Passed: the next weight, and
   after the last one `champion` (the old champion keeps `previous`). Failed: the canary is rolled
   back automatically and the run fails with the reasons.

With `action` = `rollback` (and a `reason`), a run does only **rollback**: it aborts the canary
in flight, or with none, moves `champion` back to `previous`; the triggering user is recorded.
The same from the command line: `python -m ml rollback --by WHO --reason WHY`.

Every change is in the release audit log (`python -m ml status` shows it) and in version tags.
"""


def _params() -> dict:
    from ml.common.config import load_params

    return load_params()


def _locations() -> dict:
    from ml.common import io
    from ml.common.config import data_root

    root = data_root()
    return {"audit_uri": io.join(root, "ledger", "releases"), "ledger_uri": io.join(root, "ledger", "licences"),
            "log_uri": io.join(root, "predictions")}


def _steps() -> list:
    """The weights after the initial one, then "champion": a weight of 1 is the promotion itself
    (at 100% no champion traffic is left to compare the canary with)."""
    canary = _params()["release"]["canary"]
    return [w for w in canary["ramp"] if float(canary["weight"]) < w < 1] + ["champion"]


@dag(
    dag_id="creative_model_release",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["creative", "release", "mlflow", "governance"],
    doc_md=DOC,
    default_args={"owner": "release-management", "retries": 1, "retry_delay": timedelta(minutes=1)},
    params={
        "version": Param("", type="string", pattern="^[0-9]*$",
                         description="registry version to release; empty = the challenger"),
        "step_minutes": Param(None, type=["null", "number"], minimum=0, maximum=1440,
                              description="traffic window of each ramp step; empty = release.canary.step_minutes"),
        "action": Param("release", enum=["release", "rollback"],
                        description="release the version, or roll back (abort the canary / champion to previous)"),
        "reason": Param("", type="string", description="why; required for a rollback"),
    },
)
def creative_model_release():
    @task.branch
    def choose() -> str:
        return "rollback" if get_current_context()["params"]["action"] == "rollback" else "candidate"

    @task
    def rollback() -> dict:
        from ml.registry.release import Actor, ReleaseError, rollback as run

        ctx = get_current_context()
        who = ctx["dag_run"].triggering_user_name or "airflow"
        try:
            r = run(Actor(who, ctx["params"]["reason"]), audit_uri=_locations()["audit_uri"])
        except ReleaseError as exc:
            raise AirflowFailException(str(exc)) from exc
        return {"action": r["entry"]["action"], "aliases": r["state"]["aliases"]}

    @task
    def candidate() -> dict:
        from ml.registry.release import ReleaseError, check_promotable, state

        aliases = state()["aliases"]
        version = get_current_context()["params"]["version"] or aliases.get("challenger")
        if not version:
            raise AirflowFailException("no challenger in the registry and no version given: nothing to release")
        try:
            check_promotable(version, _locations()["ledger_uri"])
        except ReleaseError as exc:
            raise AirflowFailException(str(exc)) from exc
        return {"version": version, "champion": aliases.get("champion"), "canary": aliases.get("canary")}

    approve = ApprovalOperator(
        task_id="approve",
        subject="Release creative-copy-scorer version {{ ti.xcom_pull(task_ids='candidate')['version'] }}",
        body="Version **{{ ti.xcom_pull(task_ids='candidate')['version'] }}** passed its evaluation gates and the "
             "licence guard. Current champion: {{ ti.xcom_pull(task_ids='candidate')['champion'] or 'none' }}. "
             "Approve to put it in canary; give the reason.",
        params={"reason": Param("", type="string", description="why this release (required: an empty reason fails the release)")},
        response_timeout=timedelta(days=3),
    )

    @task
    def start_canary(chosen: dict) -> dict:
        from ml.registry.release import Actor, start_canary as start

        ctx = get_current_context()
        answer = ctx["ti"].xcom_pull(task_ids="approve")
        who = answer["responded_by_user"]
        actor = Actor(who.get("name") or who.get("id"), answer["params_input"].get("reason", ""),
                      at=str(answer["responded_at"]))
        loc = _locations()
        r = start(actor, audit_uri=loc["audit_uri"], ledger_uri=loc["ledger_uri"],
                  weight=float(_params()["release"]["canary"]["weight"]), version=chosen["version"])
        return {"since": datetime.now(timezone.utc).isoformat(), "aliases": r["state"]["aliases"],
                "approved_by": actor.who}

    @task.sensor(poke_interval=30, timeout=60 * 60 * 24, mode="reschedule")
    def wait(step: dict) -> PokeReturnValue:
        from ml.registry.canary import window_ready

        if "canary" not in step["aliases"]:
            return PokeReturnValue(is_done=True, xcom_value=step)
        release = _params()["release"]
        canary = release["canary"]
        minutes = get_current_context()["params"]["step_minutes"]
        minutes = float(canary["step_minutes"] if minutes is None else minutes)
        since, now = datetime.fromisoformat(step["since"]), datetime.now(timezone.utc)
        done, counts = window_ready(_locations()["log_uri"], since, now, minutes,
                                    max(minutes, float(canary["max_wait_minutes"])), step["aliases"]["champion"],
                                    step["aliases"]["canary"], int(release["analysis"]["min_requests"]))
        if counts and not done:
            logging.getLogger("airflow.task").info("waiting for traffic: %s requests since %s", counts, step["since"])
        return PokeReturnValue(is_done=done, xcom_value={**step, "until": now.isoformat()})

    def analyse(index: int, next_step):
        @task(task_id=f"analyse_{index}")
        def run(step: dict) -> dict:
            from ml.registry.release import Actor, ramp_step

            if "canary" not in step["aliases"]:
                return step  # the first model went straight to champion: no canary to ramp
            loc = _locations()
            r = ramp_step(Actor("creative_model_release", f"ramp step {index}: canary analysis passed"),
                          since=step["since"], until=step["until"], next_step=next_step, log_uri=loc["log_uri"],
                          thresholds=_params()["release"]["analysis"], audit_uri=loc["audit_uri"],
                          ledger_uri=loc["ledger_uri"])
            if not r["passed"]:
                raise AirflowFailException(f"canary analysis failed, canary rolled back: {r['reasons']}")
            return {"since": datetime.now(timezone.utc).isoformat(), "aliases": r["state"]["aliases"],
                    "action": r["action"]}
        return run

    chosen = candidate()
    step = start_canary(chosen)
    choose() >> [chosen, rollback()]
    chosen >> approve >> step
    for index, next_step in enumerate(_steps(), start=1):
        step = analyse(index, next_step)(wait.override(task_id=f"wait_{index}")(step))


dag_object = creative_model_release()
