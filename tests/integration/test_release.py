"""The release flow against a real MLflow server on loopback: approval, canary weight, promotion,
rollback, the licence guard and the audit trail, through the core functions and the CLI."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registry(mlflow_server, register_variants, tmp_path_factory):
    """Three registered versions of the tiny model (the last two shifted a little), on a fresh server."""
    import os

    root = tmp_path_factory.mktemp("release")
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = mlflow_server
    versions = register_variants(root, (0.0, 0.05, 0.1))
    yield {"versions": versions, "audit": str(root / "audit"), "ledger": str(root / "ledger"), "root": root}
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


def cli(*args) -> int:
    from ml.__main__ import main

    return main(list(args))


def test_the_release_flow_records_every_change(registry, capsys):
    import mlflow

    from ml.registry import release
    from ml.registry.tracking import MODEL_NAME

    v1, v2, v3 = registry["versions"]
    audit, ledger = registry["audit"], registry["ledger"]
    client = mlflow.MlflowClient()
    assert release.state()["aliases"] == {"challenger": v3}  # each registration moved the challenger

    # no approval, no promotion: the CLI needs --approved-by and --reason, and they must say something
    with pytest.raises(SystemExit):
        cli("promote", "--reason", "x", "--audit", audit, "--ledger", ledger)
    assert cli("promote", "--approved-by", " ", "--reason", "ok", "--audit", audit, "--ledger", ledger) == 2
    assert release.state()["aliases"] == {"challenger": v3} and release.history(audit) == []

    # the first model of all becomes champion (there is nothing for a canary to be compared with)
    assert cli("promote", "--version", v1, "--approved-by", "rm-alice", "--reason", "first model",
               "--audit", audit, "--ledger", ledger) == 0
    assert release.state()["aliases"]["champion"] == v1

    # challenger -> canary at 10%, ramp to 25%, then champion; the old champion is kept as previous
    assert cli("promote", "--approved-by", "rm-bob", "--reason", "better voice in home", "--weight", "0.1",
               "--audit", audit, "--ledger", ledger) == 0
    now = release.state()
    assert now["aliases"] == {"champion": v1, "canary": v3} and now["canary_weight"] == pytest.approx(0.1)
    assert cli("promote", "--approved-by", "rm-bob", "--reason", "ramp", "--weight", "0.25", "--audit", audit) == 0
    assert release.state()["canary_weight"] == pytest.approx(0.25)
    # the same step again changes nothing and logs nothing (a retried task)
    assert cli("promote", "--approved-by", "rm-bob", "--reason", "ramp", "--weight", "0.25", "--audit", audit) == 0
    assert cli("promote", "--to", "champion", "--approved-by", "rm-bob", "--reason", "canary healthy",
               "--audit", audit, "--ledger", ledger) == 0
    now = release.state()
    assert now["aliases"] == {"champion": v3, "previous": v1} and now["canary_weight"] == 0

    # rollback: champion back to previous; the rolled-back version is tagged
    assert cli("rollback", "--by", "rm-carol", "--reason", "complaints from Voltix", "--audit", audit) == 0
    now = release.state()
    assert now["aliases"] == {"champion": v1}
    assert json.loads(client.get_model_version(MODEL_NAME, v3).tags["rolled_back"])["who"] == "rm-carol"
    assert cli("rollback", "--by", "rm-carol", "--reason", "again", "--audit", audit) == 1  # nothing left

    entries = release.history(audit, limit=100)
    assert [e["action"] for e in entries] == ["first_champion", "start_canary", "set_weight", "promote", "rollback"]
    assert [e["who"] for e in entries] == ["rm-alice", "rm-bob", "rm-bob", "rm-bob", "rm-carol"]
    assert entries[1]["aliases"]["canary"] == {"from": None, "to": v3}
    assert entries[1]["canary_weight"] == {"from": 0.0, "to": 0.1}
    assert entries[3]["aliases"]["previous"] == {"from": None, "to": v1}
    assert entries[4]["aliases"]["champion"] == {"from": v3, "to": v1}
    assert all(e["at"] and e["reason"] for e in entries)
    assert entries[1]["gate_reports"][v3].startswith("runs:/") and entries[1]["gate_reports"][v3].endswith(
        "evaluation/evaluation.html")
    mirrored = json.loads(client.get_model_version(MODEL_NAME, v1).tags["release_last_change"])
    assert mirrored["action"] == "rollback" and mirrored["who"] == "rm-carol" and mirrored["now"] == ["champion"]

    capsys.readouterr()
    assert cli("status", "--audit", audit) == 0
    out = capsys.readouterr().out
    assert f"champion   version {v1}" in out and "rm-carol" in out and "first_champion" in out


def test_a_canary_that_is_rolled_back_leaves_the_champion_serving(registry):
    from ml.registry import release

    v1, v2, _ = registry["versions"]
    audit, ledger = registry["audit"], registry["ledger"]
    champion = release.state()["aliases"]["champion"]
    release.start_canary(release.Actor("rm-bob", "try v2"), audit_uri=audit, ledger_uri=ledger, weight=0.05,
                         version=v2)
    with pytest.raises(release.ReleaseError, match="in canary already"):
        release.start_canary(release.Actor("rm-bob", "again"), audit_uri=audit, ledger_uri=ledger, weight=0.05,
                             version=v1)
    r = release.rollback(release.Actor("release-dag", "canary analysis failed"), audit_uri=audit)
    assert r["entry"]["action"] == "abort_canary"
    assert release.state()["aliases"].get("champion") == champion and "canary" not in release.state()["aliases"]
    assert release.state()["canary_weight"] == 0


def test_a_version_trained_on_a_refused_asset_cannot_be_promoted(registry, labelled_truth):
    import pandas as pd

    from ml.common.audit import AppendOnlyLog
    from ml.registry import release

    _, v2, _ = registry["versions"]
    ledger = str(registry["root"] / "ledger-with-refusal")
    assets = sorted(pd.read_parquet(labelled_truth)["asset_id"])
    log = AppendOnlyLog(ledger)
    decision = {"kind": "copy", "licence": "rights-managed", "policy_version": "p", "input_uri": "x"}
    log.append("2026-11-01__run1", [{**decision, "asset_id": a, "decision": "approved", "reasons": [],
                                      "logical_date": "2026-11-01", "run_id": "run1"} for a in assets])
    # a later sweep refuses one asset (its contract expired); another was refused and later approved again
    log.append("2026-12-02__sweep", [
        {**decision, "asset_id": assets[3], "decision": "rejected", "reasons": ["licence_expired"],
         "logical_date": "2026-12-02", "run_id": "sweep"},
        {**decision, "asset_id": assets[5], "decision": "rejected", "reasons": ["consent_withdrawn"],
         "logical_date": "2026-11-15", "run_id": "old"}])
    log.append("2026-12-03__fixed", [{**decision, "asset_id": assets[5], "decision": "approved", "reasons": [],
                                      "logical_date": "2026-12-03", "run_id": "fixed"}])
    refused = release.refused_assets(v2, ledger)
    assert [r["asset_id"] for r in refused] == [assets[3]] and refused[0]["reasons"] == ["licence_expired"]

    before, entries = release.state(), len(release.history(registry["audit"], 100))
    with pytest.raises(release.ReleaseError, match=assets[3][:16]) as refusal:
        release.start_canary(release.Actor("rm-bob", "try"), audit_uri=registry["audit"], ledger_uri=ledger,
                             weight=0.1, version=v2)
    assert "licence_expired" in str(refusal.value)
    assert release.state() == before and len(release.history(registry["audit"], 100)) == entries
    assert cli("promote", "--version", v2, "--approved-by", "rm-bob", "--reason", "try", "--audit",
               registry["audit"], "--ledger", ledger) == 1
