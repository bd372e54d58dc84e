"""The S3 source against moto's S3 server on loopback (a separate process, real HTTP)."""
from __future__ import annotations

import json

import pytest

from ml.common import io
from ml.data.acquire import acquire
from ml.data.synthetic import generate
from ml.licensing.gate import licence_check

pytestmark = pytest.mark.slow


def upload(bucket: str, prefix: str, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        io.s3_client().put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=data)


def test_acquire_from_s3_into_s3(bucket, params, tmp_path):
    data = generate(21, 60, image_size=48, problem_share=0.0)
    files = {rel: data.read(rel) for rel in data.files}
    first_image = next(r for r in sorted(files) if r.startswith("images/"))
    files["evil/../../outside.jpg"] = files[first_image][::-1]  # a key that climbs out of the prefix
    files["stray.jpg"] = b"\xff\xd8\xff" + b"0" * 50  # no metadata record
    meta = files["metadata.jsonl"].decode() + json.dumps(
        {"path": "../other-prefix/x.jpg", "kind": "image", "origin": "stock", "licence": "CC0-1.0"}) + "\n"
    files["metadata.jsonl"] = meta.encode()
    upload(bucket, "deliveries/2026-12", files)
    io.s3_client().put_object(Bucket=bucket, Key="deliveries/2026-11/not-mine.jpg", Body=b"x")

    out = f"s3://{bucket}/runs/r1/acquired"
    report = acquire([f"s3://{bucket}/deliveries/2026-12"], out, logical_date="2026-12-01", params=params)
    quarantine = [json.loads(l) for l in io.read_text(f"{out}/quarantine.jsonl").splitlines()]
    codes = {q["input"].split("deliveries/2026-12/", 1)[-1]: q["reason_code"] for q in quarantine}
    assert codes["evil/../../outside.jpg"] == "unsafe_path"
    assert codes["stray.jpg"] == "metadata_missing"
    assert "unsafe_path" in [c for k, c in codes.items() if k.startswith("metadata.jsonl#")]
    assert not any("2026-11" in q["input"] for q in quarantine)  # another prefix is not read
    images = sum(1 for r in data.files if r.startswith("images/"))
    assert report["accepted_by_kind"] == {"image": images, "copy": 60 - images}
    assert report["seen"] == report["accepted"] + report["quarantined"] == 60 + 3

    manifest = io.read_parquet(f"{out}/manifest.parquet")
    stored = manifest[manifest.kind == "image"].iloc[0]
    assert stored.stored_uri.startswith(f"s3://{bucket}/runs/r1/acquired/assets/")
    assert io.read_bytes(stored.stored_uri) == files[stored.input_uri.split("deliveries/2026-12/", 1)[1]]

    r = licence_check(f"{out}/manifest.parquet", f"s3://{bucket}/runs/r1/approved", logical_date="2026-12-01",
                      run_id="r1", ledger_uri=f"s3://{bucket}/ledger/licences", params=params)
    assert r["checked"] == len(manifest) == r["approved"] + r["rejected"]
    assert r["ledger_part"].startswith(f"s3://{bucket}/ledger/licences/2026-12-01__r1__") and io.exists(r["ledger_part"])
    assert len(io.read_parquet(f"s3://{bucket}/runs/r1/approved/approved.parquet")) == r["approved"]


def test_s3_client_retries_transient_errors():
    client = io.s3_client()
    assert client.meta.config.retries["mode"] == "standard"
    assert client.meta.config.retries["total_max_attempts"] >= 3
