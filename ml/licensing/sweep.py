"""The licence and consent sweep: what the rights we hold allow *today*, and what that touches.

``licence_sweep(datasets_uri, ...)`` re-checks every asset of the latest approved dataset
against the run's date and a list of withdrawn consents (the consent system's drop: CSV, JSONL
or Parquet with ``consent_id`` or ``asset_id`` and optional ``withdrawn_at``):
1. refusals (``licence_expired``, ``licence_expiring`` inside the policy's horizon,
   ``consent_withdrawn`` …) are appended to the licence ledger, so the release guard refuses
   any model version trained on them from now on;
2. lineage impact: every approved and labelled dataset version that contains them, and every
   registered model version whose training assets (``lineage/assets.json``) do; those versions
   are tagged ``promotion_blocked``;
3. remediation: the approved dataset without them is published as a new version (whose Asset
   event starts labeling QA and retraining); ``champion_affected`` says when the model now
   serving was trained on them.
Writes ``sweep.json`` and ``sweep.html``; returns the JSON.
"""
from __future__ import annotations

import html
import json
from datetime import date

import pandas as pd

from ml.common import io
from ml.common.audit import AppendOnlyLog
from ml.common.config import InputError
from ml.licensing.gate import check_asset, load_registry, policy_version


def read_withdrawn(uri: str | None, on: date) -> tuple[dict, dict]:
    """Withdrawn consents known on ``on``: by consent id and by asset id → withdrawal date."""
    if not uri:
        return {}, {}
    frame = io.read_table(uri)
    if not {"consent_id", "asset_id"} & set(frame.columns):
        raise InputError(f"{uri}: a withdrawn-consent list needs a consent_id or asset_id column")
    frame = frame.assign(withdrawn_at=frame.get("withdrawn_at", pd.Series([on.isoformat()] * len(frame))).fillna(
        on.isoformat()).astype(str).str[:10])
    frame = frame[frame["withdrawn_at"] <= on.isoformat()]
    by = {key: dict(zip(frame.dropna(subset=[key])[key].astype(str), frame.dropna(subset=[key])["withdrawn_at"]))
          if key in frame.columns else {} for key in ("consent_id", "asset_id")}
    return by["consent_id"], by["asset_id"]


def _versions_containing(datasets_uri: str, kind: str, table: str, refused: set) -> dict:
    found = {}
    root = io.join(datasets_uri, kind)
    for key in io.list_keys(root):
        if key.endswith("/" + table) and "/_history/" not in key:
            version = key.rsplit("/", 2)[-2]
            hit = sorted(refused & set(io.read_parquet(key)["asset_id"].astype(str)))
            if hit:
                found[version] = hit
    return found


def _models_containing(refused: set, on: str, reasons: dict, block: bool) -> list[dict]:
    """Registered model versions trained on refused assets; tagged ``promotion_blocked``."""
    import mlflow

    from ml.registry.release import BLOCK_TAG
    from ml.registry.tracking import LINEAGE_ARTIFACT, MODEL_NAME, configure

    configure()
    client = mlflow.MlflowClient()
    try:
        aliases_of: dict[str, list] = {}
        for alias, version in (client.get_registered_model(MODEL_NAME).aliases or {}).items():
            aliases_of.setdefault(str(version), []).append(alias)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    affected = []
    for mv in client.search_model_versions(f"name='{MODEL_NAME}'"):
        version = str(mv.version)
        try:
            lineage = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/{LINEAGE_ARTIFACT}")
        except mlflow.exceptions.MlflowException:
            affected.append({"version": version, "aliases": aliases_of.get(version, []), "assets": [],
                             "unknown_lineage": True})
            continue
        hit = sorted(refused & set(lineage["asset_ids"]))
        if hit:
            if block:
                client.set_model_version_tag(MODEL_NAME, version, BLOCK_TAG, json.dumps(
                    {"by": "licence sweep", "on": on, "assets": hit[:20], "n_assets": len(hit),
                     "reasons": sorted({r for a in hit for r in reasons[a]})}))
            affected.append({"version": version, "aliases": sorted(aliases_of.get(version, [])), "assets": hit})
    return sorted(affected, key=lambda a: int(a["version"]))


def licence_sweep(datasets_uri: str, *, on: str, run_id: str, ledger_uri: str, out: str, params: dict,
                  withdrawn_uri: str | None = None, models: bool = True, registry: dict | None = None) -> dict:
    cfg = params["licensing"]
    registry = registry or load_registry()
    day = date.fromisoformat(str(on)[:10])
    latest_uri = io.join(datasets_uri, "approved", "LATEST.json")
    if not io.exists(latest_uri):
        raise InputError(f"no approved dataset under {datasets_uri}/approved (LATEST.json missing): nothing to sweep")
    latest = json.loads(io.read_text(latest_uri))
    manifest = io.read_parquet(io.join(latest["uri"], "approved.parquet"))
    by_consent, by_asset = read_withdrawn(withdrawn_uri, day)

    refused, decisions = {}, []
    version = policy_version(registry, cfg["policy"])
    for asset in manifest.to_dict("records"):
        withdrawn = by_consent.get(str(asset.get("consent_id"))) or by_asset.get(str(asset["asset_id"]))
        if withdrawn and not asset.get("consent_withdrawn_at"):
            asset["consent_withdrawn_at"] = withdrawn
        verdict = check_asset(asset, registry, cfg["policy"], day)
        if not verdict.passed:
            refused[asset["asset_id"]] = verdict.reasons
            decisions.append({"asset_id": asset["asset_id"], "kind": asset["kind"], "licence": asset["licence"],
                              "decision": "rejected", "reasons": verdict.reasons, "policy_version": version,
                              "run_id": run_id, "logical_date": day.isoformat(), "input_uri": asset["input_uri"],
                              "by": "licence sweep"})
    ledger_part = AppendOnlyLog(ledger_uri).append_run(f"{day.isoformat()}__sweep__{run_id}", decisions) \
        if decisions else None

    ids = set(refused)
    datasets = {kind: _versions_containing(datasets_uri, kind, table, ids) if ids else {}
                for kind, table in (("approved", "approved.parquet"), ("labelled", "labelled.parquet"))}
    affected_models = _models_containing(ids, day.isoformat(), refused, block=True) if ids and models else []
    champion_affected = any("champion" in m["aliases"] for m in affected_models)

    published = None
    if ids:
        from ml.data.publish import publish_dataset

        clean = io.join(out, "approved")
        io.write_parquet(io.join(clean, "approved.parquet"),
                         manifest[~manifest["asset_id"].isin(ids)].reset_index(drop=True))
        copy_uri = io.join(latest["uri"], "approved_copy.parquet")
        if io.exists(copy_uri):
            copy = io.read_parquet(copy_uri)
            io.write_parquet(io.join(clean, "approved_copy.parquet"),
                             copy[~copy["asset_id"].isin(ids)].reset_index(drop=True))
        published = publish_dataset(clean, io.join(datasets_uri, "approved"), logical_date=day.isoformat(),
                                    run_id=run_id)

    by_reason: dict[str, int] = {}
    for reasons in refused.values():
        for code in reasons:
            by_reason[code] = by_reason.get(code, 0) + 1
    rows = manifest.set_index("asset_id")
    report = {
        "stage": "licence_sweep", "on": day.isoformat(), "run_id": run_id, "policy_version": version,
        "dataset_version_checked": latest["version"], "checked": int(len(manifest)), "refused": len(refused),
        "refused_by_reason": dict(sorted(by_reason.items())),
        "assets": [{"asset_id": a, "reasons": r, **{k: None if pd.isna(rows.at[a, k]) else rows.at[a, k]
                                                     for k in ("kind", "licence", "licence_expires", "consent_id")}}
                   for a, r in sorted(refused.items())],
        "dataset_versions": datasets, "model_versions": affected_models, "champion_affected": champion_affected,
        "new_dataset_version": published["version"] if published and published["changed"] else None,
        "retrain": bool(published and published["changed"]), "ledger_part": ledger_part,
        "outputs": {"json": io.join(out, "sweep.json"), "html": io.join(out, "sweep.html")},
    }
    io.write_text(report["outputs"]["json"], json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    io.write_text(report["outputs"]["html"], render_html(report))
    return report


def render_html(r: dict) -> str:
    esc = html.escape
    status = "CHAMPION AFFECTED" if r["champion_affected"] else ("assets refused" if r["refused"] else "all clear")
    assets = "".join(f"<tr><td><code>{esc(a['asset_id'][:16])}</code></td><td>{esc(a['kind'])}</td>"
                     f"<td>{esc(str(a['licence']))}</td><td>{esc(str(a['licence_expires'] or ''))}</td>"
                     f"<td>{esc(str(a['consent_id'] or ''))}</td><td>{esc(', '.join(a['reasons']))}</td></tr>"
                     for a in r["assets"])
    datasets = "".join(f"<tr><td>{esc(kind)}</td><td><code>{esc(v)}</code></td><td>{len(hit)}</td></tr>"
                       for kind, versions in r["dataset_versions"].items() for v, hit in versions.items())
    models = "".join(f"<tr><td>{esc(m['version'])}</td><td>{esc(', '.join(m['aliases']) or '-')}</td>"
                     f"<td>{len(m['assets'])}</td></tr>" for m in r["model_versions"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Licence sweep {esc(r['on'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:4px 8px}}.bad{{color:#b00}}</style></head><body>
<h1>Licence and consent sweep, {esc(r['on'])}: <span class="{'bad' if r['refused'] else ''}">{status}</span></h1>
<p>Checked {r['checked']} assets of approved dataset <code>{esc(r['dataset_version_checked'])}</code> with policy
<code>{esc(r['policy_version'])}</code>; refused {r['refused']} ({esc(json.dumps(r['refused_by_reason']))}).
New approved dataset version: <code>{esc(str(r['new_dataset_version']))}</code>; retraining triggered: {r['retrain']}.</p>
<h2>Refused assets</h2><table><tr><th>asset</th><th>kind</th><th>licence</th><th>expires</th><th>consent</th>
<th>reasons</th></tr>{assets}</table>
<h2>Dataset versions that contain them</h2><table><tr><th>dataset</th><th>version</th><th>assets</th></tr>{datasets}</table>
<h2>Model versions trained on them (now blocked from promotion)</h2>
<table><tr><th>version</th><th>aliases</th><th>assets</th></tr>{models}</table></body></html>"""
