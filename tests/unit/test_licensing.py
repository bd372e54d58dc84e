"""Licence and consent gate: each reason code, dated against the run's date; the ledger."""
from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from ml.common.audit import AppendOnlyLog
from ml.data.acquire import acquire
from ml.licensing.gate import asset_history, check_asset, licence_check, load_registry
from tests.conftest import read_jsonl

ON = date(2026, 12, 1)


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(scope="module")
def policy(params):
    return params["licensing"]["policy"]


def asset(**kw):
    return {"asset_id": "a" * 64, "licence": "CC0-1.0", "origin": "stock", **kw}


@pytest.mark.parametrize("fields, reasons", [
    ({}, []),
    ({"licence": "agency-custom-v2"}, ["licence_unknown"]),
    ({"licence": "CC-BY-NC-4.0", "attribution": "by X"}, ["licence_noncommercial"]),
    ({"licence": "CC-BY-ND-4.0", "attribution": "by X"}, ["licence_no_derivatives"]),
    ({"licence": "CC-BY-NC-ND-4.0"}, ["licence_noncommercial", "licence_no_derivatives", "attribution_missing"]),
    ({"licence": "CC-BY-4.0"}, ["attribution_missing"]),
    ({"licence": "CC-BY-4.0", "attribution": "Photo by X"}, []),
    ({"licence": "rights-managed", "licence_expires": "2026-11-30"}, ["licence_expired"]),
    ({"licence": "rights-managed", "licence_expires": "2026-12-30"}, ["licence_expiring"]),  # inside 30 days
    ({"licence": "rights-managed", "licence_expires": "2026-12-31"}, []),  # exactly 30 days out
    ({"licence": "rights-managed"}, ["licence_expired"]),  # a dated contract without its date
    ({"origin": "user_generated"}, ["consent_missing"]),
    ({"origin": "user_generated", "consent_id": "c1", "consent_scope": "training,generation",
      "consent_withdrawn_at": "2026-11-02"}, ["consent_withdrawn"]),
    ({"origin": "user_generated", "consent_id": "c1", "consent_scope": "display"}, ["consent_scope"]),
    ({"origin": "user_generated", "consent_id": "c1", "consent_scope": "training",
      "consent_withdrawn_at": "2027-01-01"}, []),  # withdrawal dated after the run
])
def test_gate_reasons(registry, policy, fields, reasons):
    verdict = check_asset(asset(**fields), registry, policy, ON)
    assert verdict.reasons == reasons
    assert verdict.passed is (not reasons)


def test_expiry_is_judged_on_the_run_date_not_the_clock(registry, policy):
    a = asset(licence="rights-managed", licence_expires="2026-06-01")
    assert check_asset(a, registry, policy, date(2026, 4, 1)).passed
    assert check_asset(a, registry, policy, date(2026, 5, 10)).reasons == ["licence_expiring"]
    assert check_asset(a, registry, policy, date(2026, 6, 2)).reasons == ["licence_expired"]


def test_horizon_and_uses_come_from_the_policy(registry, policy):
    a = asset(licence="rights-managed", licence_expires="2027-01-20")
    assert check_asset(a, registry, policy, ON).passed
    assert check_asset(a, registry, {**policy, "expiry_horizon_days": 90}, ON).reasons == ["licence_expiring"]
    nd = asset(licence="CC-BY-ND-4.0", attribution="X")
    assert check_asset(nd, registry, {**policy, "required_uses": ["commercial"]}, ON).passed


def test_stage_writes_outputs_and_an_append_only_ledger(tmp_path, params):
    acquire(["synthetic://?seed=3&n=200&image_size=32"], str(tmp_path / "acq"), logical_date="2026-12-01", params=params)
    ledger = str(tmp_path / "ledger")
    manifest = pd.read_parquet(tmp_path / "acq" / "manifest.parquet")
    r = licence_check(str(tmp_path / "acq" / "manifest.parquet"), str(tmp_path / "ok"), logical_date="2026-12-01",
                      run_id="run-1", ledger_uri=ledger, params=params)
    approved = pd.read_parquet(tmp_path / "ok" / "approved.parquet")
    rejected = read_jsonl(tmp_path / "ok" / "rejected.jsonl")
    assert r["checked"] == len(manifest) == len(approved) + len(rejected)  # nothing lost
    assert r["rejected"] > 0 and r["passed"]
    assert not set(approved.asset_id) & {x["asset_id"] for x in rejected}
    copy = pd.read_parquet(tmp_path / "ok" / "approved_copy.parquet")
    assert set(copy.asset_id) == set(approved[approved.kind == "copy"].asset_id)

    decisions = list(AppendOnlyLog(ledger).read())
    assert len(decisions) == len(manifest)
    assert {d["run_id"] for d in decisions} == {"run-1"}
    # a retry of the same run writes nothing new; a later run adds its own part
    licence_check(str(tmp_path / "acq" / "manifest.parquet"), str(tmp_path / "ok"), logical_date="2026-12-01",
                  run_id="run-1", ledger_uri=ledger, params=params)
    r2 = licence_check(str(tmp_path / "acq" / "manifest.parquet"), str(tmp_path / "later"), logical_date="2027-09-01",
                       run_id="run-2", ledger_uri=ledger, params=params)
    assert len(list(AppendOnlyLog(ledger).read())) == 2 * len(manifest)
    assert r2["approved"] < r["approved"]  # contracts ran out in between

    # "why is this asset in or out", for any past run
    dated = approved[approved.licence == "rights-managed"].sort_values("licence_expires")
    expired_later = dated.iloc[0]
    assert expired_later["licence_expires"] < "2027-09-01"
    history = asset_history(ledger, expired_later["asset_id"][:12])
    assert [(h["run_id"], h["decision"]) for h in history] == [("run-1", "approved"), ("run-2", "rejected")]
    assert history[1]["reasons"][0] in ("licence_expired", "licence_expiring")


def test_a_ledger_part_is_never_rewritten(tmp_path):
    log = AppendOnlyLog(str(tmp_path))
    log.append("run-1", [{"a": 1}])
    log.append("run-1", [{"a": 1}])  # a retry: same content, fine
    with pytest.raises(ValueError, match="never rewritten"):
        log.append("run-1", [{"a": 2}])
    assert list(log.read()) == [{"a": 1}]


def test_a_changed_policy_on_the_same_date_adds_decisions_and_loses_none(tmp_path, params):
    acquire(["synthetic://?seed=3&n=60&image_size=32"], str(tmp_path / "acq"), logical_date="2026-12-01", params=params)
    ledger = str(tmp_path / "ledger")
    run = lambda p, out: licence_check(str(tmp_path / "acq" / "manifest.parquet"), str(tmp_path / out),  # noqa: E731
                                       logical_date="2026-12-01", run_id="cli__2026-12-01", ledger_uri=ledger, params=p)
    first = run(params, "a")
    assert run(params, "a")["ledger_part"] == first["ledger_part"]  # a retry: nothing new
    wider = {**params, "licensing": {**params["licensing"],
                                     "policy": {**params["licensing"]["policy"], "expiry_horizon_days": 90}}}
    second = run(wider, "b")  # the steward widened the horizon and re-ran the DVC stage the same day
    assert second["ledger_part"] != first["ledger_part"]
    decisions = list(AppendOnlyLog(ledger).read())
    assert len(decisions) == 2 * first["checked"]
    assert {d["policy_version"] for d in decisions} == {first["policy_version"], second["policy_version"]}


def test_gate_fails_when_the_feed_is_implausible(tmp_path, params):
    acquire(["synthetic://?seed=3&n=60&image_size=32"], str(tmp_path / "acq"), logical_date="2026-12-01", params=params)
    strict = {**params, "licensing": {**params["licensing"], "gate": {"min_approved": 10_000, "max_rejected_share": 0.6}}}
    r = licence_check(str(tmp_path / "acq" / "manifest.parquet"), str(tmp_path / "o"), logical_date="2026-12-01",
                      run_id="r", ledger_uri=str(tmp_path / "l"), params=strict)
    assert not r["passed"] and "min_approved" in r["gate"]["reasons"][0]
    assert (tmp_path / "o" / "report.json").exists()
