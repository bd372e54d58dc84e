"""Sources of creative assets. Each is one small class behind :class:`Source`.

A source is a folder-like set of names: asset files plus the control files
``metadata.jsonl``, ``copy.jsonl`` and ``copy.csv`` at its root. Adding a source is one new
class registered with :func:`register`; acquisition never looks at which one it has.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path, PurePosixPath
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

from ml.common import io
from ml.common.config import InputError

CONTROL_FILES = ("metadata.jsonl", "copy.jsonl", "copy.csv")
SOURCES: dict[str, type["Source"]] = {}


def register(cls: type["Source"]) -> type["Source"]:
    for scheme in cls.schemes:
        SOURCES[scheme] = cls
    return cls


def unsafe_reason(rel: str) -> str | None:
    """Why a relative name would escape its source, or None when it is safe."""
    if not rel or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        return f"absolute path {rel!r}"
    if ".." in PurePosixPath(rel.replace("\\", "/")).parts:
        return f"path {rel!r} climbs out of the source with '..'"
    return None


class Source(ABC):
    schemes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, uri: str, params: dict):
        self.uri, self.params = uri, params

    @abstractmethod
    def names(self) -> list[str]:
        """Every relative name in the source, control files included, sorted."""

    @abstractmethod
    def read(self, rel: str) -> bytes:
        """The bytes of one name; the caller has checked it is safe."""

    def unsafe(self, rel: str) -> str | None:
        return unsafe_reason(rel)

    def uri_of(self, rel: str) -> str:
        return f"{self.uri.rstrip('/')}/{rel}"


@register
class FolderSource(Source):
    """A local folder: a stock-library export or an agency delivery."""

    schemes = ("", "file")

    def __init__(self, uri: str, params: dict):
        super().__init__(uri, params)
        self.root = io.local_path(uri)
        if not self.root.is_dir():
            raise FileNotFoundError(f"source folder does not exist: {self.root}")
        self.real_root = self.root.resolve()

    def names(self) -> list[str]:
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):  # does not follow directory links
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in filenames:
                if not name.startswith("."):
                    found.append(str(Path(dirpath, name).relative_to(self.root).as_posix()))
        return sorted(found)

    def unsafe(self, rel: str) -> str | None:
        reason = unsafe_reason(rel)
        if reason:
            return reason
        target = (self.root / rel).resolve()
        if not target.is_relative_to(self.real_root):
            return f"{rel!r} is a link to {target}, outside the source"
        return None

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()


@register
class S3Source(Source):
    """A bucket and prefix, through boto3 (endpoint from ``AWS_ENDPOINT_URL``, standard retries)."""

    schemes = ("s3",)

    def __init__(self, uri: str, params: dict):
        super().__init__(uri, params)
        self.bucket, prefix = io.split_s3(uri)
        self.prefix = prefix.rstrip("/") + "/" if prefix else ""

    def names(self) -> list[str]:
        base = f"s3://{self.bucket}/{self.prefix}"
        return sorted(u[len(base):] for u in io.list_keys(base.rstrip("/")) if not u.endswith("/"))

    def read(self, rel: str) -> bytes:
        return io.read_bytes(f"s3://{self.bucket}/{self.prefix}{rel}")


@register
class SyntheticSource(Source):
    """``synthetic://?seed=N&n=M``: the seeded generator of :mod:`ml.data.synthetic`.

    Other generator settings come from ``params['synthetic']`` (licence expiry dates are drawn
    around its ``reference_date``); the query may override ``image_size``, ``copy_share`` and
    ``problem_share``.
    """

    schemes = ("synthetic",)

    def __init__(self, uri: str, params: dict):
        super().__init__(uri, params)
        from ml.data import synthetic

        query = {k: v[-1] for k, v in parse_qs(urlparse(uri).query).items()}
        cfg = dict(params.get("synthetic", {}))
        for key in ("image_size", "copy_share", "problem_share"):
            if key in query:
                cfg[key] = type(cfg.get(key, 0.0))(query[key])
        seed = int(query.get("seed", params.get("base", {}).get("seed", 0)))
        n = int(query.get("n", cfg.get("n", 100)))
        self.data = synthetic.generate(
            seed, n,
            image_size=int(cfg.get("image_size", 256)),
            copy_share=float(cfg.get("copy_share", 0.5)),
            problem_share=float(cfg.get("problem_share", 0.04)),
            logical_date=str(cfg.get("reference_date", "2026-12-01")),
        )

    def names(self) -> list[str]:
        return sorted(self.data.files)

    def uri_of(self, rel: str) -> str:
        return f"{self.uri}#{rel}"

    def read(self, rel: str) -> bytes:
        return self.data.read(rel)


def open_source(uri: str, params: dict) -> Source:
    scheme = urlparse(uri).scheme if "://" in uri else ""
    try:
        cls = SOURCES[scheme]
    except KeyError:
        raise InputError(f"no source for {uri!r}; known schemes: {sorted(s or 'path' for s in SOURCES)}") from None
    return cls(uri, params)
