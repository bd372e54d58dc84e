"""Licence and consent gate.

``check_asset`` is the pure gate for one manifest row; ``licence_check`` is the stage: it runs
the gate over a manifest, writes ``approved.parquet``, ``approved_copy.parquet``,
``rejected.jsonl`` and ``report.json``, and appends every decision to the licence ledger.
"""
from __future__ import annotations

import json
from datetime import date, timedelta

from ml.common import io
from ml.common.audit import AppendOnlyLog
from ml.common.config import contracts_dir, stable_hash
from ml.common.verdict import Verdict



def load_registry(path=None) -> dict:
    import yaml

    with open(path or contracts_dir() / "licences.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def policy_version(registry: dict, policy: dict) -> str:
    """Which rules decided: the registry's version plus a hash of the registry and the policy."""
    return f"{registry.get('version', 'unversioned')}+{stable_hash([registry, policy], 8)}"


def _present(value) -> bool:
    return value is not None and value == value and str(value).strip() != ""  # NaN != NaN


def check_asset(asset: dict, registry: dict, policy: dict, on: date) -> Verdict:
    """May this asset be used for training and commercial creative on date ``on``?

    ``policy``: ``required_uses`` (``commercial``, ``derivatives``), ``expiry_horizon_days``,
    ``consent_scopes_required``. Every failing rule adds its reason code.
    """
    reasons: list[str] = []
    terms = registry["licences"].get(asset.get("licence"))
    if terms is None:
        return Verdict(False, ["licence_unknown"], {"licence": asset.get("licence")})
    uses = set(policy.get("required_uses", []))
    if "commercial" in uses and not terms.get("commercial"):
        reasons.append("licence_noncommercial")
    if "derivatives" in uses and not terms.get("derivatives"):
        reasons.append("licence_no_derivatives")
    expires = asset.get("licence_expires")
    if _present(expires):
        until = date.fromisoformat(str(expires)[:10])
        if until < on:
            reasons.append("licence_expired")
        elif until < on + timedelta(days=int(policy["expiry_horizon_days"])):
            reasons.append("licence_expiring")
    elif terms.get("requires_expiry"):
        reasons.append("licence_expired")  # a dated contract without its date cannot be shown valid
    if terms.get("attribution") and not _present(asset.get("attribution")):
        reasons.append("attribution_missing")
    if asset.get("origin") == "user_generated":
        if not _present(asset.get("consent_id")):
            reasons.append("consent_missing")
        else:
            withdrawn = asset.get("consent_withdrawn_at")
            if _present(withdrawn) and date.fromisoformat(str(withdrawn)[:10]) <= on:
                reasons.append("consent_withdrawn")
            scope = set(filter(None, str(asset.get("consent_scope") or "").split(",")))
            missing = set(policy.get("consent_scopes_required", [])) - scope
            if missing:
                reasons.append("consent_scope")
    return Verdict(not reasons, reasons, {"licence": asset.get("licence")})


def check_batch(approved: int, rejected: int, thresholds: dict) -> Verdict:
    """The stage's gate: enough approved and not an implausible share refused (a broken feed)."""
    seen = approved + rejected
    share = rejected / seen if seen else 1.0
    reasons = []
    if approved < int(thresholds["min_approved"]):
        reasons.append(f"approved {approved} < min_approved {thresholds['min_approved']}")
    if share > float(thresholds["max_rejected_share"]):
        reasons.append(f"rejected share {share:.3f} > max_rejected_share {thresholds['max_rejected_share']}")
    return Verdict(not reasons, reasons, {"approved": approved, "rejected": rejected, "rejected_share": round(share, 6)})


def licence_check(manifest_uri: str, out: str, *, logical_date: str, run_id: str, ledger_uri: str,
                  params: dict, registry: dict | None = None) -> dict:
    """Gate every asset of a manifest; write the outputs and the ledger part of this run.

    The ad-copy table ``copy.parquet`` next to the manifest is filtered to the approved rows.
    """
    cfg = params["licensing"]
    registry = registry or load_registry()
    version = policy_version(registry, cfg["policy"])
    on = date.fromisoformat(str(logical_date)[:10])
    manifest = io.read_parquet(manifest_uri)
    copy_uri = io.sibling(manifest_uri, "copy.parquet")

    decisions, rejected, keep = [], [], []
    for asset in manifest.to_dict("records"):
        verdict = check_asset(asset, registry, cfg["policy"], on)
        keep.append(verdict.passed)
        decisions.append({"asset_id": asset["asset_id"], "kind": asset["kind"], "licence": asset["licence"],
                          "decision": "approved" if verdict.passed else "rejected",
                          "reasons": verdict.reasons, "policy_version": version, "run_id": run_id,
                          "logical_date": on.isoformat(), "input_uri": asset["input_uri"]})
        if not verdict.passed:
            rejected.append({"asset_id": asset["asset_id"], "input": asset["input_uri"], "kind": asset["kind"],
                             "licence": asset["licence"], "reason_code": verdict.reasons[0],
                             "reasons": verdict.reasons})

    approved = manifest[keep].reset_index(drop=True)
    io.write_parquet(io.join(out, "approved.parquet"), approved)
    if io.exists(copy_uri):
        copy_table = io.read_parquet(copy_uri)
        approved_copy = copy_table[copy_table["asset_id"].isin(set(approved["asset_id"]))].reset_index(drop=True)
        io.write_parquet(io.join(out, "approved_copy.parquet"), approved_copy)
    io.write_text(io.join(out, "rejected.jsonl"), "".join(json.dumps(r, sort_keys=True) + "\n" for r in rejected))
    ledger_part = AppendOnlyLog(ledger_uri).append_run(f"{on.isoformat()}__{run_id}", decisions)

    by_reason: dict[str, int] = {}
    for r in rejected:
        for code in r["reasons"]:
            by_reason[code] = by_reason.get(code, 0) + 1
    gate = check_batch(len(approved), len(rejected), cfg["gate"])
    report = {
        "stage": "licence_check",
        "manifest": manifest_uri,
        "logical_date": on.isoformat(),
        "run_id": run_id,
        "policy_version": version,
        "checked": len(manifest),
        "approved": len(approved),
        "rejected": len(rejected),
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "ledger_part": ledger_part,
        "outputs": {name: io.join(out, name) for name in
                    ("approved.parquet", "approved_copy.parquet", "rejected.jsonl", "report.json")},
        "passed": gate.passed,
        "gate": gate.to_dict(),
    }
    io.write_text(io.join(out, "report.json"), json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def asset_history(ledger_uri: str, asset_prefix: str) -> list[dict]:
    """Every ledger decision about assets whose id starts with ``asset_prefix``, oldest first."""
    return sorted((d for d in AppendOnlyLog(ledger_uri).read() if d["asset_id"].startswith(asset_prefix)),
                  key=lambda d: (d["logical_date"], d["run_id"]))
