"""Acquisition: every bad-input class is quarantined with its reason code, nothing is lost."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os

import pandas as pd
import pytest
from PIL import Image

from ml.data.acquire import acquire
from ml.data.synthetic import png_bomb
from tests.conftest import read_jsonl


def jpeg(colour=(200, 10, 10), size=(32, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG")
    return buf.getvalue()


def png(colour=(10, 200, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buf, format="PNG")
    return buf.getvalue()


def meta(path, **extra):
    return {"path": path, "kind": "image", "origin": "stock", "licence": "CC0-1.0", **extra}


COPY = {"copy_variant_id": "v1", "brand": "Voltix", "industry": "electronics", "audience": "lookalike",
        "channel": "search", "headline": "Engineered speaker", "body": "Precise sound, engineered to last.",
        "cta": "Shop now", "language": "en", "impressions": 1000, "clicks": 40, "conversions": 3,
        "licence": "owned", "origin": "owned"}


@pytest.fixture
def bad_source(tmp_path):
    """A delivery folder holding one of each kind of bad input, plus good ones."""
    src = tmp_path / "delivery"
    (src / "img").mkdir(parents=True)
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(jpeg((1, 2, 3)))
    files = {
        "img/good.jpg": jpeg(),
        "img/good.png": png(),
        "img/empty.jpg": b"",
        "img/truncated.jpg": jpeg((5, 5, 5), (400, 300))[:300],
        "img/bomb.png": png_bomb(30000, 30000),
        "img/brochure.jpg": b"%PDF-1.4 not an image",
        "img/mislabelled.jpg": png((9, 9, 9)),
        "img/zcopy.jpg": jpeg(),
        "img/no-metadata.jpg": jpeg((0, 0, 255)),
        "img/no-licence.jpg": jpeg((0, 255, 255)),
        "img/bad-kind.jpg": jpeg((255, 0, 255)),
    }
    for rel, data in files.items():
        (src / rel).write_bytes(data)
    os.symlink(outside, src / "img" / "link-out.jpg")
    lines = [json.dumps(meta(rel)) for rel in files if rel not in ("img/no-metadata.jpg", "img/no-licence.jpg", "img/bad-kind.jpg")]
    lines += [
        json.dumps(meta("img/link-out.jpg")),
        json.dumps({"path": "img/no-licence.jpg", "kind": "image", "origin": "stock"}),
        json.dumps(meta("img/bad-kind.jpg", kind="video")),
        json.dumps(meta("../escape.jpg")),
        json.dumps(meta("/etc/passwd")),
        json.dumps(meta("img/not-there.jpg")),
        "{this is not json",
    ]
    (src / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    rows = [COPY, {**COPY, "copy_variant_id": "v2", "clicks": 2000},
            {k: v for k, v in COPY.items() if k != "headline"} | {"copy_variant_id": "v3"},
            {**COPY, "copy_variant_id": "v4", "impressions": "many"},
            COPY | {"copy_variant_id": "v1", "headline": "Other text, same id"}]
    (src / "copy.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    with open(src / "copy.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COPY))
        w.writeheader()
        w.writerow({**COPY, "copy_variant_id": "c1", "headline": "A CSV headline"})
        w.writerow({**COPY, "copy_variant_id": "c2", "conversions": 99})
        w.writerow(COPY)  # same content as the JSONL row v1
        fh.write("c9,Voltix,electronics,lookalike,search,h,b,cta,en,1,1,1,owned,owned,EXTRA\n")
    return src


EXPECTED = {
    "img/empty.jpg": "empty_file",
    "img/truncated.jpg": "corrupt_file",
    "img/bomb.png": "too_large",
    "img/brochure.jpg": "unsupported_type",
    "img/mislabelled.jpg": "unsupported_type",
    "img/zcopy.jpg": "duplicate_content",
    "img/no-metadata.jpg": "metadata_missing",
    "img/no-licence.jpg": "metadata_invalid",
    "img/bad-kind.jpg": "metadata_invalid",
    "img/link-out.jpg": "unsafe_path",
}


def test_every_bad_input_is_quarantined_with_its_reason(bad_source, tmp_path, params):
    out = tmp_path / "out"
    report = acquire([str(bad_source)], str(out), logical_date="2026-12-01", params=params)
    quarantine = read_jsonl(out / "quarantine.jsonl")
    by_input = {q["input"]: q["reason_code"] for q in quarantine}
    for rel, code in EXPECTED.items():
        assert by_input.get(f"{bad_source}/{rel}") == code, rel
    meta_uri = f"{bad_source}/metadata.jsonl"
    line_codes = sorted(c for i, c in by_input.items() if i.startswith(meta_uri))
    assert line_codes == ["metadata_invalid", "metadata_invalid", "unsafe_path", "unsafe_path"]
    copy_codes = [c for i, c in by_input.items() if "/copy." in i]
    assert copy_codes.count("schema_violation") == 7  # 4 bad JSONL rows + broken line + 2 CSV rows
    assert copy_codes.count("duplicate_content") == 1  # the CSV copy of v1

    manifest = pd.read_parquet(out / "manifest.parquet")
    assert sorted(manifest[manifest.kind == "image"].input_uri) == [f"{bad_source}/img/good.jpg", f"{bad_source}/img/good.png"]
    assert sorted(manifest[manifest.kind == "copy"].copy_variant_id) == ["c1", "v1"]
    # nothing lost: 12 files + 4 metadata lines without a file + 10 copy rows
    assert report["seen"] == 12 + 4 + 10 == report["accepted"] + report["quarantined"]
    assert report["quarantined"] == len(quarantine) and report["accepted"] == len(manifest)
    assert json.loads((out / "report.json").read_text())["seen"] == report["seen"]


def test_accepted_assets_are_stored_by_content_hash(bad_source, tmp_path, params):
    out = tmp_path / "out"
    acquire([str(bad_source)], str(out), logical_date="2026-12-01T06:00:00+00:00", params=params)
    manifest = pd.read_parquet(out / "manifest.parquet")
    good = manifest[manifest.input_uri.str.endswith("good.jpg")].iloc[0]
    data = (bad_source / "img" / "good.jpg").read_bytes()
    assert good.asset_id == hashlib.sha256(data).hexdigest()
    assert open(good.stored_uri, "rb").read() == data
    assert (good.width, good.height, good.bytes) == (32, 24, len(data))
    assert set(manifest.acquired_at) == {"2026-12-01T06:00:00+00:00"}  # the run's date, not the clock
    copy = pd.read_parquet(out / "copy.parquet")
    assert set(copy.asset_id) == set(manifest[manifest.kind == "copy"].asset_id)
    assert copy.set_index("copy_variant_id").loc["v1", "clicks"] == 40


def test_pixel_limit_comes_from_params(bad_source, tmp_path, params):
    tight = {**params, "acquire": {**params["acquire"], "max_pixels": 100}}
    acquire([str(bad_source)], str(tmp_path / "o"), logical_date="2026-12-01", params=tight)
    codes = {q["input"].rsplit("/", 1)[-1]: q["reason_code"] for q in read_jsonl(tmp_path / "o" / "quarantine.jsonl")}
    assert codes["good.jpg"] == "too_large"  # 32×24 = 768 pixels > 100


def test_synthetic_source_is_deterministic_and_has_problems(tmp_path, params):
    a = acquire(["synthetic://?seed=7&n=120&image_size=64"], str(tmp_path / "a"), logical_date="2026-12-01", params=params)
    b = acquire(["synthetic://?seed=7&n=120&image_size=64"], str(tmp_path / "b"), logical_date="2026-12-01", params=params)
    for name in ("copy.parquet", "quarantine.jsonl"):  # the manifest names its output folder
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    ma, mb = pd.read_parquet(tmp_path / "a" / "manifest.parquet"), pd.read_parquet(tmp_path / "b" / "manifest.parquet")
    assert list(ma.asset_id) == list(mb.asset_id) and a == {**b, "outputs": a["outputs"]}
    assert a["seen"] >= 120 and a["seen"] == a["accepted"] + a["quarantined"] and a["quarantined"] > 0 and a["accepted_by_kind"]["image"] > 0
    copy = pd.read_parquet(tmp_path / "a" / "copy.parquet")
    assert set(copy.industry) == {"fashion", "home", "electronics"} and copy.brand.nunique() >= 4


def test_unknown_source_scheme_is_a_clear_error(tmp_path, params):
    from ml.common.config import InputError

    with pytest.raises(InputError, match="no source for"):
        acquire(["ftp://host/x"], str(tmp_path), logical_date="2026-12-01", params=params)
