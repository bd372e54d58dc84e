"""Dataset versions: the approved dataset (what passed the licence gate and the data contracts)
and the labelled dataset (what passed labeling QA). Each version is a content hash, a copy of
its tables under that version, a ``LATEST.json`` pointer and an append-only history.

The version depends only on content (asset ids are SHA-256 hashes of the assets and copy
rows; labels are part of a labelled row's identity), never on when or by which run it was made.
"""
from __future__ import annotations

import hashlib
import json

from ml.common import io
from ml.common.audit import AppendOnlyLog

TABLES = ("approved.parquet", "approved_copy.parquet")
LABELLED_TABLES = ("labelled.parquet", "labels.parquet", "annotators.csv", "qa_report.json")


def dataset_version(keys) -> str:
    digest = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()
    return digest[:16]


def publish_version(src_dir: str, tables, datasets_uri: str, version: str, record: dict, *, run_id: str) -> dict:
    """Copy ``tables`` of ``src_dir`` under ``datasets_uri/version`` and move LATEST when it changed."""
    target = io.join(datasets_uri, version)
    latest_uri = io.join(datasets_uri, "LATEST.json")
    previous = json.loads(io.read_text(latest_uri))["version"] if io.exists(latest_uri) else None
    for name in tables:
        src = io.join(src_dir, name)
        if io.exists(src) and not io.exists(io.join(target, name)):
            io.write_bytes(io.join(target, name), io.read_bytes(src))
    record = {"version": version, "uri": target, **record, "run_id": run_id, "previous": previous}
    changed = previous != version
    if changed:
        io.write_text(latest_uri, json.dumps(record, indent=2, sort_keys=True) + "\n")
        AppendOnlyLog(io.join(datasets_uri, "_history")).append(f"{version}__{run_id}", [record])
    return {**record, "changed": changed}


def publish_dataset(approved_dir: str, datasets_uri: str, *, logical_date: str, run_id: str) -> dict:
    approved = io.read_parquet(io.join(approved_dir, "approved.parquet"))
    record = {"assets": int(len(approved)), "images": int((approved["kind"] == "image").sum()),
              "copy_rows": int((approved["kind"] == "copy").sum()), "logical_date": str(logical_date)}
    return publish_version(approved_dir, TABLES, datasets_uri, dataset_version(approved["asset_id"]), record,
                           run_id=run_id)


def publish_labelled(qa_dir: str, datasets_uri: str, *, logical_date: str, run_id: str) -> dict:
    """Publish the QA-approved labelled dataset. Only a passed QA run writes ``labelled.parquet``."""
    uri = io.join(qa_dir, "labelled.parquet")
    if not io.exists(uri):
        raise FileNotFoundError(f"{uri} does not exist: labeling QA did not pass, nothing to publish")
    labelled = io.read_parquet(uri)
    label_cols = [c for c in ("engagement_label", "brand_voice") if c in labelled.columns]
    keys = labelled[["asset_id", *label_cols]].astype(str).agg(":".join, axis=1)
    record = {"items": int(len(labelled)), "logical_date": str(logical_date),
              "labels_by_class": labelled["engagement_label"].value_counts().sort_index().to_dict()}
    return publish_version(qa_dir, LABELLED_TABLES, datasets_uri, dataset_version(keys), record, run_id=run_id)
