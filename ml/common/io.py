"""One small I/O layer over local paths, ``file://`` and ``s3://`` URIs.

Every stage reads and writes through these functions, so a task never assumes that it
shares a local disk with another task. Writes are atomic: a local file is written under a
temporary name and renamed; an S3 ``put_object`` is atomic by itself.
"""
from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse


def sibling(uri: str, name: str) -> str:
    """The URI of ``name`` in the same folder or prefix as ``uri``."""
    uri = str(uri)
    if is_s3(uri):
        return uri.rsplit("/", 1)[0] + "/" + name
    return str(local_path(uri).with_name(name))


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def local_path(uri: str) -> Path:
    """The local path of a plain path or ``file://`` URI."""
    uri = str(uri)
    if uri.startswith("file://"):
        return Path(urlparse(uri).path)
    if "://" in uri:
        raise ValueError(f"not a local location: {uri}")
    return Path(uri)


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URI: {uri}")
    return parsed.netloc, parsed.path.lstrip("/")


def join(base: str, *parts: str) -> str:
    base = str(base)
    if is_s3(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(local_path(base).joinpath(*parts))


@functools.lru_cache(maxsize=None)
def s3_client(endpoint_url: str | None = None):
    """A boto3 S3 client with standard retries (transient 5xx, throttling, dropped connections).

    The endpoint comes from ``AWS_ENDPOINT_URL`` unless given; clients are cached per endpoint.
    """
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
        config=Config(
            retries={"max_attempts": int(os.environ.get("CREATIVE_S3_MAX_ATTEMPTS", "5")), "mode": "standard"},
            connect_timeout=5,
            read_timeout=float(os.environ.get("CREATIVE_S3_READ_TIMEOUT", "60")),
        ),
    )


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return local_path(uri).read_bytes()


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


@functools.cache
def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_bytes(uri: str, data: bytes) -> str:
    """Write atomically; return the URI."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        s3_client().put_object(Bucket=bucket, Key=key, Body=data)
        return uri
    path = local_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; readers (stewards, other workers) need the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return uri


def write_text(uri: str, text: str) -> str:
    return write_bytes(uri, text.encode("utf-8"))


def exists(uri: str) -> bool:
    if is_s3(uri):
        from botocore.exceptions import ClientError

        bucket, key = split_s3(uri)
        try:
            s3_client().head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
    return local_path(uri).exists()


def list_keys(prefix_uri: str) -> Iterator[str]:
    """Full URIs of every object (or regular file) under a prefix, in sorted order."""
    if is_s3(prefix_uri):
        bucket, prefix = split_s3(prefix_uri)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                yield f"s3://{bucket}/{obj['Key']}"
        return
    root = local_path(prefix_uri)
    if root.is_dir():
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
            yield str(path)


def write_parquet(uri: str, frame) -> str:
    """Write a DataFrame as Parquet, byte-for-byte the same for the same data."""
    import io as _io

    buf = _io.BytesIO()
    frame.to_parquet(buf, index=False, engine="pyarrow", compression="zstd")
    return write_bytes(uri, buf.getvalue())


def read_parquet(uri: str):
    import io as _io

    import pandas as pd

    return pd.read_parquet(_io.BytesIO(read_bytes(uri)), engine="pyarrow")


def read_table(uri: str):
    """A Parquet, CSV or JSONL table; a folder means every Parquet part under it (a prediction log)."""
    import io as _io
    import json

    import pandas as pd

    from ml.common.config import InputError

    if uri.endswith(".csv"):
        return pd.read_csv(_io.BytesIO(read_bytes(uri)))
    if uri.endswith(".jsonl"):
        return pd.DataFrame([json.loads(line) for line in read_text(uri).splitlines() if line.strip()])
    if uri.endswith(".parquet"):
        return read_parquet(uri)
    parts = [k for k in list_keys(uri) if k.endswith(".parquet")]
    if not parts:
        raise InputError(f"{uri}: no .parquet, .csv or .jsonl table, and no Parquet parts under it")
    return pd.concat([read_parquet(k) for k in parts], ignore_index=True)
