"""Acquisition: bring assets and ad copy in from sources, check every input at the door,
store accepted content by its SHA-256 and write the manifest.

Every input (an asset file, a metadata line that matches no file, a copy row) ends in exactly
one place: a manifest row or a quarantine record with a reason code. ``report.json`` checks
``seen == accepted + quarantined``.
"""
from __future__ import annotations

import csv
import hashlib
import io as _io
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import PurePosixPath

from ml.common import io
from ml.common.config import InputError, stable_hash
from ml.common.progress import Progress
from ml.data.sources import CONTROL_FILES, Source, open_source, unsafe_reason


KINDS = ("image", "copy")
ORIGINS = ("stock", "open", "owned", "user_generated", "synthetic")
IMAGE_EXTENSIONS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".webp": "webp"}
TEXT_EXTENSIONS = {".txt": "text", ".md": "text"}
COPY_TEXT_FIELDS = ("copy_variant_id", "brand", "industry", "audience", "channel", "headline",
                    "body", "cta", "language", "licence", "origin")
COPY_COUNT_FIELDS = ("impressions", "clicks", "conversions")
OPTIONAL_FIELDS = ("licence_expires", "attribution", "rights_holder", "source_url")
MANIFEST_COLUMNS = ["asset_id", "kind", "media_type", "origin", "source", "input_uri", "stored_uri",
                    "bytes", "width", "height", "licence", "licence_expires", "attribution",
                    "rights_holder", "source_url", "consent_id", "consent_scope", "consent_granted_at",
                    "consent_withdrawn_at", "copy_variant_id", "acquired_at"]
COPY_COLUMNS = ["asset_id", *COPY_TEXT_FIELDS, *COPY_COUNT_FIELDS]


class Rejected(Exception):
    """An input that does not pass intake; carries its reason code."""

    def __init__(self, reason_code: str, detail: str):
        super().__init__(f"{reason_code}: {detail}")
        self.reason_code, self.detail = reason_code, detail


@dataclass
class Intake:
    """What one acquisition run has seen so far."""

    out: str
    acquired_at: str
    limits: dict
    rows: list = field(default_factory=list)
    copy_rows: list = field(default_factory=list)
    quarantine: list = field(default_factory=list)
    seen_ids: dict = field(default_factory=dict)
    seen_variants: set = field(default_factory=set)
    seen: int = 0  # inputs met, counted apart from where they end

    def reject(self, source: Source, input_uri: str, exc: Rejected) -> None:
        self.quarantine.append({"input": input_uri, "source": source.uri,
                                "reason_code": exc.reason_code, "detail": exc.detail})

    def claim(self, asset_id: str, input_uri: str) -> None:
        first = self.seen_ids.get(asset_id)
        if first is not None:
            raise Rejected("duplicate_content", f"same content as {first}")
        self.seen_ids[asset_id] = input_uri


# ---------------------------------------------------------------- metadata and copy contracts

def _iso_date(value, name: str, code: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        raise Rejected(code, f"{name} is not an ISO date: {value!r}") from None


def _consent_fields(consent, code: str) -> dict:
    if consent in (None, ""):
        return {}
    if not isinstance(consent, dict) or not consent.get("id"):
        raise Rejected(code, "consent must be an object with an id")
    scope = consent.get("scope") or []
    if isinstance(scope, str):
        scope = [s for s in scope.replace(";", ",").split(",") if s.strip()]
    if not isinstance(scope, list) or not all(isinstance(s, str) for s in scope):
        raise Rejected(code, "consent.scope must be a list of strings")
    return {"consent_id": str(consent["id"]), "consent_scope": ",".join(s.strip() for s in scope),
            "consent_granted_at": _iso_date(consent.get("granted_at"), "consent.granted_at", code),
            "consent_withdrawn_at": _iso_date(consent.get("withdrawn_at"), "consent.withdrawn_at", code)}


def _rights_fields(record: dict, code: str) -> dict:
    """Licence, expiry, attribution, provenance and consent of a metadata record or copy row."""
    licence = record.get("licence")
    if not isinstance(licence, str) or not licence.strip():
        raise Rejected(code, "licence is missing")
    origin = record.get("origin")
    if origin not in ORIGINS:
        raise Rejected(code, f"origin {origin!r} is not one of {', '.join(ORIGINS)}")
    expires = _iso_date(record.get("licence_expires"), "licence_expires", code)
    if licence == "rights-managed" and not expires:
        raise Rejected(code, "licence_expires is required for rights-managed assets")
    fields = {"licence": licence.strip(), "origin": origin, "licence_expires": expires}
    for name in ("attribution", "rights_holder", "source_url"):
        value = record.get(name)
        fields[name] = str(value) if value not in (None, "") else None
    consent = record.get("consent")
    if consent is None and record.get("consent_id"):  # flat columns of a CSV
        consent = {"id": record["consent_id"], "scope": record.get("consent_scope"),
                   "granted_at": record.get("consent_granted_at"),
                   "withdrawn_at": record.get("consent_withdrawn_at")}
    return {**fields, **_consent_fields(consent, code)}


def parse_metadata(source: Source, intake: Intake, text: str) -> dict[str, dict]:
    """``metadata.jsonl`` as path -> record; bad lines are quarantined here."""
    records: dict[str, dict] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{source.uri_of('metadata.jsonl')}#L{lineno}"
        try:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise Rejected("metadata_invalid", f"line is not JSON: {exc.msg}") from None
            if not isinstance(record, dict) or not isinstance(record.get("path"), str):
                raise Rejected("metadata_invalid", "record has no 'path'")
            rel = record["path"]
            reason = unsafe_reason(rel)
            if reason:
                raise Rejected("unsafe_path", reason)
            rel = str(PurePosixPath(rel))
            if rel in records:
                raise Rejected("metadata_invalid", f"second record for {rel!r}")
            records[rel] = {**record, "_line": where}
        except Rejected as exc:
            intake.seen += 1
            intake.reject(source, where, exc)
    return records


def _image_info(data: bytes, ext: str, max_pixels: int) -> tuple[str, int, int]:
    from PIL import Image

    if data[:3] == b"\xff\xd8\xff":
        fmt = "jpeg"
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        fmt = "png"
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        fmt = "webp"
    else:
        raise Rejected("unsupported_type", f"content is not a JPEG, PNG or WebP image (starts {data[:8]!r})")
    declared = IMAGE_EXTENSIONS.get(ext)
    if declared != fmt:
        raise Rejected("unsupported_type", f"mislabelled: name says {ext or 'nothing'}, content is {fmt}")
    try:
        with Image.open(_io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise Rejected("too_large", f"{width}x{height} = {width * height} pixels > limit {max_pixels}")
            img.load()
    except Image.DecompressionBombError as exc:
        raise Rejected("too_large", str(exc)) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise Rejected("corrupt_file", f"{fmt} does not decode: {exc}") from None
    return fmt, width, height


def take_file(source: Source, intake: Intake, rel: str, record: dict | None) -> dict:
    reason = source.unsafe(rel)
    if reason:
        raise Rejected("unsafe_path", reason)
    if record is None:
        raise Rejected("metadata_missing", "no metadata.jsonl record for this file")
    kind = record.get("kind")
    if kind not in KINDS:
        raise Rejected("metadata_invalid", f"kind {kind!r} is not one of {', '.join(KINDS)}")
    rights = _rights_fields(record, "metadata_invalid")
    data = source.read(rel)
    if not data:
        raise Rejected("empty_file", "zero bytes")
    if len(data) > intake.limits["max_bytes"]:
        raise Rejected("too_large", f"{len(data)} bytes > limit {intake.limits['max_bytes']}")
    ext = PurePosixPath(rel).suffix.lower()
    width = height = None
    if kind == "image":
        media_type, width, height = _image_info(data, ext, intake.limits["max_pixels"])
    else:
        if ext not in TEXT_EXTENSIONS:
            raise Rejected("unsupported_type", f"copy files are .txt or .md, not {ext or 'no extension'}")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Rejected("corrupt_file", f"not UTF-8 text: {exc}") from None
        media_type = "text"
    asset_id = hashlib.sha256(data).hexdigest()
    input_uri = source.uri_of(rel)
    intake.claim(asset_id, input_uri)
    stored = io.join(intake.out, "assets", asset_id[:2], asset_id + ext)
    if not io.exists(stored):
        io.write_bytes(stored, data)
    return {"asset_id": asset_id, "kind": kind, "media_type": media_type, "source": source.uri,
            "input_uri": input_uri, "stored_uri": stored, "bytes": len(data), "width": width,
            "height": height, **rights, "copy_variant_id": None, "acquired_at": intake.acquired_at}


def _copy_records(source: Source, name: str, data: bytes):
    """(where, row or None) for each row of copy.jsonl / copy.csv; None marks an unparsable row."""
    text = data.decode("utf-8", errors="replace")
    if name.endswith(".jsonl"):
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    row = None
                yield f"{source.uri_of(name)}#L{lineno}", row if isinstance(row, dict) else None
    else:
        for lineno, row in enumerate(csv.DictReader(_io.StringIO(text)), 2):
            if None in row:  # more cells than the header names
                row = None
            yield f"{source.uri_of(name)}#L{lineno}", row


def take_copy_row(source: Source, intake: Intake, where: str, row: dict | None) -> tuple[dict, dict]:
    if row is None:
        raise Rejected("schema_violation", "row is not a JSON object / well-formed CSV row")
    clean: dict = {}
    for name in COPY_TEXT_FIELDS:
        value = row.get(name)
        if not isinstance(value, str) or not value.strip():
            raise Rejected("schema_violation", f"{name} is missing or empty")
        clean[name] = value.strip()
    for name in COPY_COUNT_FIELDS:
        value = row.get(name)
        text = str(value).strip()
        if isinstance(value, bool) or not (text.isascii() and text.isdigit()):
            raise Rejected("schema_violation", f"{name} must be a whole number >= 0, got {value!r}")
        clean[name] = int(text)
    if clean["clicks"] > clean["impressions"]:
        raise Rejected("schema_violation", f"clicks {clean['clicks']} > impressions {clean['impressions']}")
    if clean["conversions"] > clean["clicks"]:
        raise Rejected("schema_violation", f"conversions {clean['conversions']} > clicks {clean['clicks']}")
    rights = _rights_fields(row, "schema_violation")
    canonical = json.dumps({**clean, **{k: v for k, v in rights.items() if v is not None}},
                           sort_keys=True, separators=(",", ":")).encode()
    asset_id = hashlib.sha256(canonical).hexdigest()
    if asset_id not in intake.seen_ids and clean["copy_variant_id"] in intake.seen_variants:
        raise Rejected("schema_violation", f"copy_variant_id {clean['copy_variant_id']!r} appears twice")
    intake.claim(asset_id, where)
    intake.seen_variants.add(clean["copy_variant_id"])
    manifest_row = {"asset_id": asset_id, "kind": "copy", "media_type": "copy", "source": source.uri,
                    "input_uri": where, "stored_uri": io.join(intake.out, "copy.parquet") + f"#{asset_id}",
                    "bytes": len(canonical), "width": None, "height": None, **rights,
                    "copy_variant_id": clean["copy_variant_id"], "acquired_at": intake.acquired_at}
    return manifest_row, {"asset_id": asset_id, **clean}


# ---------------------------------------------------------------- the stage

def default_sources(params: dict) -> list[str]:
    """The embedded default: the seeded synthetic source sized by ``params.yaml``."""
    return [f"synthetic://?seed={params['base']['seed']}&n={params['synthetic']['n']}"]


def acquire(sources: list[str], out: str, *, logical_date: str, params: dict) -> dict:
    """Acquire every source into ``out``; return the report (also written to report.json)."""
    import pandas as pd

    if not sources:
        raise InputError("acquire needs at least one --source")
    when = datetime.fromisoformat(str(logical_date))
    acquired_at = (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).isoformat()
    cfg = params["acquire"]
    intake = Intake(out=out, acquired_at=acquired_at,
                    limits={"max_bytes": int(cfg["max_bytes"]), "max_pixels": int(cfg["max_pixels"])})
    for uri in sources:
        source = open_source(uri, params)
        names = source.names()
        present = set(names)
        records = {}
        if "metadata.jsonl" in present:
            records = parse_metadata(source, intake, source.read("metadata.jsonl").decode("utf-8", errors="replace"))
        files = [n for n in names if n not in CONTROL_FILES]
        progress = Progress(f"acquire {uri}", total=len(files))
        for rel in files:
            intake.seen += 1
            record = records.pop(rel, None)
            try:
                intake.rows.append(take_file(source, intake, rel, record))
            except Rejected as exc:
                intake.reject(source, source.uri_of(rel), exc)
            progress.step()
        progress.finish()
        for rel, record in records.items():  # metadata records whose file is not in the source
            intake.seen += 1
            intake.reject(source, record["_line"], Rejected("metadata_invalid", f"no file {rel!r} in the source"))
        for name in ("copy.jsonl", "copy.csv"):
            if name in present:
                for where, row in _copy_records(source, name, source.read(name)):
                    intake.seen += 1
                    try:
                        manifest_row, copy_row = take_copy_row(source, intake, where, row)
                    except Rejected as exc:
                        intake.reject(source, where, exc)
                        continue
                    intake.rows.append(manifest_row)
                    intake.copy_rows.append(copy_row)

    manifest = pd.DataFrame(intake.rows, columns=MANIFEST_COLUMNS).astype({"width": "Int64", "height": "Int64", "bytes": "int64"})
    copy_table = pd.DataFrame(intake.copy_rows, columns=COPY_COLUMNS).astype({c: "int64" for c in COPY_COUNT_FIELDS})
    io.write_parquet(io.join(out, "manifest.parquet"), manifest)
    io.write_parquet(io.join(out, "copy.parquet"), copy_table)
    io.write_text(io.join(out, "quarantine.jsonl"),
                  "".join(json.dumps(q, sort_keys=True) + "\n" for q in intake.quarantine))
    by_reason: dict[str, int] = {}
    for q in intake.quarantine:
        by_reason[q["reason_code"]] = by_reason.get(q["reason_code"], 0) + 1
    report = {
        "stage": "acquire",
        "sources": list(sources),
        "logical_date": str(logical_date),
        "params_hash": stable_hash(cfg),
        "seen": intake.seen,
        "accepted": len(intake.rows),
        "quarantined": len(intake.quarantine),
        "accepted_by_kind": {k: int((manifest["kind"] == k).sum()) for k in KINDS},
        "quarantined_by_reason": dict(sorted(by_reason.items())),
        "outputs": {name: io.join(out, name) for name in
                    ("manifest.parquet", "copy.parquet", "quarantine.jsonl", "report.json")},
        "passed": len(intake.rows) > 0,
    }
    if report["seen"] != report["accepted"] + report["quarantined"]:
        raise AssertionError(f"acquisition lost inputs: {report}")  # a bug, never bad input
    io.write_text(io.join(out, "report.json"), json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report
