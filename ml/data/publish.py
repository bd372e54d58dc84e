"""Approved-dataset versions: the content hash of what passed the licence gate and the data
contracts, a copy of the approved tables under that version, and a ``LATEST.json`` pointer.

The version depends only on content (the asset ids, which are SHA-256 hashes of the assets
and of the copy rows), never on when or by which run the data was approved.
"""
from __future__ import annotations

import hashlib
import json

from ml.common import io
from ml.common.audit import AppendOnlyLog

TABLES = ("approved.parquet", "approved_copy.parquet")


def dataset_version(asset_ids) -> str:
    digest = hashlib.sha256("\n".join(sorted(asset_ids)).encode()).hexdigest()
    return digest[:16]


def publish_dataset(approved_dir: str, datasets_uri: str, *, logical_date: str, run_id: str) -> dict:
    approved = io.read_parquet(io.join(approved_dir, "approved.parquet"))
    version = dataset_version(approved["asset_id"])
    target = io.join(datasets_uri, version)
    latest_uri = io.join(datasets_uri, "LATEST.json")
    previous = json.loads(io.read_text(latest_uri))["version"] if io.exists(latest_uri) else None
    for name in TABLES:
        src = io.join(approved_dir, name)
        if io.exists(src) and not io.exists(io.join(target, name)):
            io.write_bytes(io.join(target, name), io.read_bytes(src))
    record = {"version": version, "uri": target, "assets": int(len(approved)),
              "images": int((approved["kind"] == "image").sum()), "copy_rows": int((approved["kind"] == "copy").sum()),
              "logical_date": str(logical_date), "run_id": run_id, "previous": previous}
    changed = previous != version
    if changed:
        io.write_text(latest_uri, json.dumps(record, indent=2, sort_keys=True) + "\n")
        AppendOnlyLog(io.join(datasets_uri, "_history")).append(f"{version}__{run_id}", [record])
    return {**record, "changed": changed}
