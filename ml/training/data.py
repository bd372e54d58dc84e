"""The training data of a run: a labelled dataset version, the licence-approved manifest it
came from (its SHA-256 goes on the model), and an optional brand subset."""
from __future__ import annotations

import json

from ml.common import io
from ml.common.config import InputError


def prepare(labelled_datasets_uri: str, version: str | None, brands: list[str], out: str) -> dict:
    """Resolve ``version`` (None: ``LATEST.json``) under ``labelled_datasets_uri``; with ``brands``,
    write the subset to ``out/labelled.parquet``. Returns URIs and counts (JSON-able)."""
    if version is None:
        latest = io.join(labelled_datasets_uri, "LATEST.json")
        if not io.exists(latest):
            raise InputError(f"no labelled dataset yet ({latest} missing): run creative_labeling_qa first")
        version = json.loads(io.read_text(latest))["version"]
    folder = io.join(labelled_datasets_uri, version)
    labelled = io.join(folder, "labelled.parquet")
    if not io.exists(labelled):
        raise InputError(f"labelled dataset version {version} not found under {labelled_datasets_uri}")
    qa = json.loads(io.read_text(io.join(folder, "qa_report.json")))
    manifest = io.join(qa["inputs"]["dataset"], "approved.parquet")
    frame = io.read_parquet(labelled)
    if brands:
        unknown = sorted(set(brands) - set(frame["brand"]))
        if unknown:
            raise InputError(f"brands {unknown} are not in labelled dataset {version} (it has {sorted(set(frame['brand']))})")
        frame = frame[frame["brand"].isin(brands)]
        labelled = io.write_parquet(io.join(out, "labelled.parquet"), frame.reset_index(drop=True))
    return {"version": version, "labelled": labelled, "manifest": manifest, "rows": int(len(frame)),
            "brands": sorted(set(frame["brand"]))}
