"""Append-only logs: the licence ledger and the audit trail.

A log is a folder (local or ``s3://``) of JSONL parts, one part per run and stream. A part is
written once, atomically, and never rewritten: a retried task writes the same part again with
the same content, so retries neither lose nor duplicate decisions. Reading a log reads every
part in name order.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Iterable, Iterator

from ml.common import io

_SAFE = re.compile(r"[^A-Za-z0-9_.=+-]")


def safe_key(text: str) -> str:
    """A run id or date as a file-name-safe key (``manual__2026-12-01T00:00:00+00:00`` ...)."""
    return _SAFE.sub("_", text)


class AppendOnlyLog:
    def __init__(self, uri: str):
        self.uri = uri

    def part_uri(self, part: str) -> str:
        return io.join(self.uri, f"{safe_key(part)}.jsonl")

    @staticmethod
    def _body(records: Iterable[dict]) -> str:
        return "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records)

    def append_run(self, prefix: str, records: list[dict]) -> str:
        """Write a run's decisions as part ``<prefix>__<content hash>``: a retry with the same
        decisions writes nothing new; other decisions on the same run and date (a changed
        policy, a re-run of the DVC stage) are kept in a part of their own, never lost."""
        digest = hashlib.sha256(self._body(records).encode()).hexdigest()[:8]
        return self.append(f"{prefix}__{digest}", records)

    def append(self, part: str, records: Iterable[dict]) -> str:
        """Write ``records`` as part ``part``. A part that exists must hold the same records."""
        body = self._body(records)
        uri = self.part_uri(part)
        if io.exists(uri):
            if io.read_text(uri) != body:
                raise ValueError(
                    f"append-only log part {uri} exists with other content; "
                    "a part is never rewritten (use a new run id)"
                )
            return uri
        return io.write_text(uri, body)

    def read(self) -> Iterator[dict]:
        for uri in io.list_keys(self.uri):
            if uri.endswith(".jsonl"):
                for line in io.read_text(uri).splitlines():
                    if line.strip():
                        yield json.loads(line)
