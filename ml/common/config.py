"""Configuration: ``params.yaml`` (thresholds, seeds, sizes) and settings from the environment.

``params.yaml`` is the single source of hyperparameters and thresholds. Locations and
secrets come only from the environment (see the README's settings table).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def params_path() -> Path:
    return Path(os.environ.get("CREATIVE_PARAMS", REPO_ROOT / "params.yaml"))


def load_params(path: str | Path | None = None) -> dict[str, Any]:
    import yaml

    with open(path or params_path(), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def contracts_dir() -> Path:
    return Path(os.environ.get("CREATIVE_CONTRACTS_DIR", REPO_ROOT / "data_contracts"))


def data_root() -> str:
    """Where the DAGs keep their data: a local folder by default, ``s3://…`` in production."""
    return os.environ.get("CREATIVE_DATA_URI", str(REPO_ROOT / "data"))


def stable_hash(obj: Any, length: int = 12) -> str:
    """A short SHA-256 of a JSON-able object, independent of key order."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


class InputError(ValueError):
    """A user's mistake (a wrong URI, an unknown suite): reported plainly, without a traceback."""
