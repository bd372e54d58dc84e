"""The release flow on top of MLflow aliases: approval, canary weight, ramp, promotion, rollback.

MLflow has aliases and nothing else. This module adds what release managers need around them:
- a ``challenger`` becomes ``canary`` only with an approval (who, when, why);
- the canary carries a traffic weight (registered-model tag ``canary_weight``) that the scoring
  service routes by, raised step by step;
- ``promote_canary`` makes the canary ``champion`` and keeps the old champion as ``previous``;
- ``rollback`` aborts a canary, or, with none in flight, moves ``champion`` back to ``previous``;
- every change is appended to the release audit log (who, when, from, to, reason, gate report)
  and mirrored in model-version tags;
- a version whose training data holds an asset the licence ledger now refuses, or that the
  licence sweep blocked, cannot be promoted.

Each function checks the current state first and changes nothing when it is already reached,
so a retried Airflow task neither repeats a change nor logs it twice.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import mlflow

from ml.common import io
from ml.common.audit import AppendOnlyLog
from ml.common.config import InputError
from ml.registry.tracking import LINEAGE_ARTIFACT, MODEL_NAME, configure

ALIASES = ("challenger", "canary", "champion", "previous")
WEIGHT_TAG = "canary_weight"
BLOCK_TAG = "promotion_blocked"


class ReleaseError(InputError):
    """A release step that the current state or the governance rules refuse."""


@dataclass(frozen=True)
class Actor:
    """Who made a change and why; ``at`` is when (an approval's time, or now)."""
    who: str
    reason: str
    at: str = ""

    def __post_init__(self):
        if not self.who.strip() or not self.reason.strip():
            raise ReleaseError("a release change needs who made it and why (--approved-by/--by and --reason)")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _client() -> mlflow.MlflowClient:
    configure()
    return mlflow.MlflowClient()


def state(client: mlflow.MlflowClient | None = None) -> dict:
    """Aliases (alias → version) and the canary weight of the registered model."""
    client = client or _client()
    try:
        model = client.get_registered_model(MODEL_NAME)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {"model": MODEL_NAME, "aliases": {}, "canary_weight": 0.0}
        raise
    aliases = {a: str(v) for a, v in (model.aliases or {}).items()}
    weight = float(model.tags.get(WEIGHT_TAG, 0) or 0) if "canary" in aliases else 0.0
    return {"model": MODEL_NAME, "aliases": aliases, "canary_weight": weight}


def refused_assets(version: str, ledger_uri: str, client: mlflow.MlflowClient | None = None) -> list[dict]:
    """Assets of ``version``'s training data whose latest licence-ledger decision is a refusal."""
    client = client or _client()
    run_id = client.get_model_version(MODEL_NAME, version).run_id
    try:
        lineage = json.loads(io.read_text(mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=LINEAGE_ARTIFACT)))
    except (OSError, mlflow.exceptions.MlflowException) as exc:
        raise ReleaseError(f"version {version} has no {LINEAGE_ARTIFACT}: its training data cannot be checked "
                           f"against the licence ledger, so it cannot be promoted ({exc})") from exc
    latest: dict[str, dict] = {}
    for decision in sorted(AppendOnlyLog(ledger_uri).read(), key=lambda d: (d["logical_date"], d["run_id"])):
        latest[decision["asset_id"]] = decision
    return [{"asset_id": a, "reasons": latest[a]["reasons"], "logical_date": latest[a]["logical_date"]}
            for a in lineage["asset_ids"] if a in latest and latest[a]["decision"] != "approved"]


def check_promotable(version: str, ledger_uri: str, client: mlflow.MlflowClient | None = None) -> None:
    """Raise ``ReleaseError`` unless ``version`` passed its gates, is not blocked and was
    trained on no asset the licence ledger now refuses."""
    client = client or _client()
    mv = client.get_model_version(MODEL_NAME, version)
    if mv.tags.get("gate_passed") != "true":
        raise ReleaseError(f"version {version} did not pass its evaluation gates (gate_passed="
                           f"{mv.tags.get('gate_passed')!r}); it cannot be promoted")
    if mv.tags.get(BLOCK_TAG):
        raise ReleaseError(f"version {version} is blocked from promotion: {mv.tags[BLOCK_TAG]}")
    refused = refused_assets(version, ledger_uri, client)
    if refused:
        shown = ", ".join(f"{r['asset_id'][:16]} ({'/'.join(r['reasons'])})" for r in refused[:10])
        raise ReleaseError(f"version {version} was trained on {len(refused)} asset(s) the licence ledger now "
                           f"refuses: {shown}{' …' if len(refused) > 10 else ''}; retrain without them")


def _gate_report(client, version: str | None) -> str:
    if not version:
        return ""
    return f"runs:/{client.get_model_version(MODEL_NAME, version).run_id}/evaluation/evaluation.html"


def _record(client, audit_uri: str, action: str, actor: Actor, changes: dict, weight: tuple | None = None,
            canary: str | None = None) -> dict:
    """Append one change (alias moves and/or a weight change of ``canary``) to the audit log and
    mirror it in the tags of the versions involved."""
    at = actor.at or _now()
    entry = {"at": at, "action": action, "who": actor.who, "reason": actor.reason, "model": MODEL_NAME,
             "aliases": {a: {"from": f, "to": t} for a, (f, t) in changes.items()}}
    if weight is not None:
        entry["canary_weight"] = {"from": weight[0], "to": weight[1]}
    versions = sorted({v for f, t in changes.values() for v in (f, t) if v} | ({canary} if canary else set()))
    entry["gate_reports"] = {v: _gate_report(client, v) for v in versions}
    recorded = _now()  # the order of the log; ``at`` may be an earlier approval time
    entry["recorded_at"] = recorded
    AppendOnlyLog(audit_uri).append_run(f"{recorded.replace(':', '')}__{action}", [entry])
    for v in versions:
        roles = sorted(a for a, (_, t) in changes.items() if t == v)
        client.set_model_version_tag(MODEL_NAME, v, "release_last_change", json.dumps(
            {"at": at, "action": action, "who": actor.who, "reason": actor.reason, "now": roles}))
    return entry


def _move(client, changes: dict) -> None:
    for alias, (_, to) in changes.items():
        if to:
            client.set_registered_model_alias(MODEL_NAME, alias, to)
        else:
            client.delete_registered_model_alias(MODEL_NAME, alias)


def start_canary(actor: Actor, *, audit_uri: str, ledger_uri: str, weight: float,
                 version: str | None = None) -> dict:
    """Approved: the challenger (or ``version``) becomes ``canary`` with ``weight`` of the
    traffic. The first model of all, with no champion to compare with, becomes champion."""
    client = _client()
    now = state(client)
    aliases = now["aliases"]
    version = str(version or aliases.get("challenger") or "")
    if not version:
        raise ReleaseError("no version to promote: there is no challenger (train one, or pass --version)")
    if aliases.get("canary") == version and aliases.get("champion") != version:
        return {"changed": False, "state": now}
    if aliases.get("canary"):
        raise ReleaseError(f"version {aliases['canary']} is in canary already; promote it or roll it back first")
    if aliases.get("champion") == version:  # already released (a retried first promotion)
        return {"changed": False, "state": now}
    if not 0 < weight <= 1:
        raise ReleaseError(f"a canary weight is a share of traffic in (0, 1], not {weight}")
    check_promotable(version, ledger_uri, client)
    # the first model of all has nothing to be compared with as a canary: it serves all traffic
    role = "canary" if aliases.get("champion") else "champion"
    changes = {role: (None, version)}
    if aliases.get("challenger") == version:
        changes["challenger"] = (version, None)
    if role == "canary":
        client.set_registered_model_tag(MODEL_NAME, WEIGHT_TAG, str(weight))
    _move(client, changes)
    entry = _record(client, audit_uri, "start_canary" if role == "canary" else "first_champion", actor, changes,
                    weight=(0.0, weight) if role == "canary" else None)
    return {"changed": True, "entry": entry, "state": state(client)}


def set_weight(actor: Actor, weight: float, *, audit_uri: str) -> dict:
    """A ramp step: the canary's share of traffic becomes ``weight``."""
    client = _client()
    now = state(client)
    if "canary" not in now["aliases"]:
        raise ReleaseError("there is no canary to set a weight for")
    if not 0 < weight <= 1:
        raise ReleaseError(f"a canary weight is a share of traffic in (0, 1], not {weight}")
    if abs(now["canary_weight"] - weight) < 1e-9:
        return {"changed": False, "state": now}
    client.set_registered_model_tag(MODEL_NAME, WEIGHT_TAG, str(weight))
    entry = _record(client, audit_uri, "set_weight", actor, {}, weight=(now["canary_weight"], weight),
                    canary=now["aliases"]["canary"])
    return {"changed": True, "entry": entry, "state": state(client)}


def promote_canary(actor: Actor, *, audit_uri: str, ledger_uri: str) -> dict:
    """The canary becomes ``champion``; the old champion keeps the alias ``previous``."""
    client = _client()
    now = state(client)
    aliases = now["aliases"]
    if "canary" not in aliases:
        raise ReleaseError("there is no canary to promote")
    version = aliases["canary"]
    check_promotable(version, ledger_uri, client)  # the ledger may have changed since the canary began
    changes = {"champion": (aliases.get("champion"), version), "canary": (version, None)}
    if aliases.get("champion"):
        changes["previous"] = (aliases.get("previous"), aliases["champion"])
    _move(client, changes)
    client.set_registered_model_tag(MODEL_NAME, WEIGHT_TAG, "0")
    entry = _record(client, audit_uri, "promote", actor, changes, weight=(now["canary_weight"], 0.0))
    return {"changed": True, "entry": entry, "state": state(client)}


def rollback(actor: Actor, *, audit_uri: str) -> dict:
    """Abort the canary if one is in flight (the champion keeps serving); otherwise move
    ``champion`` back to ``previous``. The version rolled back from is tagged ``rolled_back``."""
    client = _client()
    now = state(client)
    aliases = now["aliases"]
    if "canary" in aliases:
        version = aliases["canary"]
        changes = {"canary": (version, None)}
        action = "abort_canary"
    elif aliases.get("previous"):
        version = aliases["champion"]
        changes = {"champion": (version, aliases["previous"]), "previous": (aliases["previous"], None)}
        action = "rollback"
    else:
        raise ReleaseError("nothing to roll back: no canary in flight and no previous champion")
    _move(client, changes)
    client.set_registered_model_tag(MODEL_NAME, WEIGHT_TAG, "0")
    client.set_model_version_tag(MODEL_NAME, version, "rolled_back", json.dumps(
        {"at": actor.at or _now(), "who": actor.who, "reason": actor.reason}))
    entry = _record(client, audit_uri, action, actor, changes, weight=(now["canary_weight"], 0.0))
    return {"changed": True, "entry": entry, "state": state(client)}


def ramp_step(actor: Actor, *, since: str, until: str, next_step, log_uri: str, thresholds: dict,
              audit_uri: str, ledger_uri: str) -> dict:
    """Judge the canary on the prediction log of ``[since, until)`` against the champion; if it
    passed, move to ``next_step`` (a weight, or "champion"); if not, roll the canary back.
    Returns the analysis with ``passed`` and what was done."""
    from ml.registry.canary import analyse

    now = state()
    aliases = now["aliases"]
    if "canary" not in aliases:
        raise ReleaseError("there is no canary to analyse (rolled back or promoted meanwhile?)")
    report = analyse(log_uri, datetime.fromisoformat(since), datetime.fromisoformat(until), aliases["champion"],
                     aliases["canary"], thresholds)
    if not report["passed"]:
        done = rollback(Actor(actor.who, "canary analysis failed: " + "; ".join(report["reasons"])), audit_uri=audit_uri)
    elif next_step == "champion":
        done = promote_canary(actor, audit_uri=audit_uri, ledger_uri=ledger_uri)
    else:
        done = set_weight(actor, float(next_step), audit_uri=audit_uri)
    return {**report, "action": done["entry"]["action"] if done["changed"] else "none", "state": done["state"]}


def history(audit_uri: str, limit: int = 10) -> list[dict]:
    """The latest audit entries, newest last."""
    return sorted(AppendOnlyLog(audit_uri).read(), key=lambda e: e["recorded_at"])[-limit:]
