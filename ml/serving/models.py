"""The models the service answers with: ``champion`` and ``canary`` by alias, and the routing.

A ``ModelSet`` is an immutable snapshot (models, weight). The loader builds a new snapshot from
the registry and the service swaps one reference, so a request in flight finishes on the
snapshot it started with and a reload never fails it. Versions already loaded are reused.
"""
from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    alias: str
    version: str
    scorer: object  # ml.training.model.Scorer


@dataclass(frozen=True)
class ModelSet:
    champion: Loaded | None = None
    canary: Loaded | None = None
    weight: float = 0.0
    loaded_at: str = ""
    versions: dict = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.champion is not None

    def route(self, request_key: str | None) -> Loaded:
        """The canary for a ``weight`` share of request keys, the same key always the same way
        while the weight holds (a hash of the key, not a coin toss); no key: a random one."""
        if self.canary is not None and self.weight > 0:
            key = request_key if request_key else uuid.uuid4().hex
            if bucket(key) < self.weight:
                return self.canary
        return self.champion


def bucket(key: str) -> float:
    """A request key's place in [0, 1), uniform over keys."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0 ** 64


def _load(alias: str, version: str, max_batch: int) -> Loaded:
    import mlflow

    from ml.registry.tracking import MODEL_NAME
    from ml.training.model import Scorer

    run_id = mlflow.MlflowClient().get_model_version(MODEL_NAME, version).run_id
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="adapter/adapter.npz")
    scorer = Scorer.from_adapter(path)
    scorer.warm_up(max_batch)
    log.info("loaded %s version %s", alias, version)
    return Loaded(alias, version, scorer)


def load(previous: ModelSet | None = None, max_batch: int = 16) -> ModelSet:
    """A snapshot of the registry now: the champion and canary versions, the canary weight.
    New versions are compiled for batches up to ``max_batch`` items before they answer."""
    from datetime import datetime, timezone

    from ml.registry.release import state

    now = state()
    aliases = now["aliases"]
    known = {m.version: m.scorer for m in (previous.champion, previous.canary) if m} if previous else {}

    def get(alias: str) -> Loaded | None:
        version = aliases.get(alias)
        if not version:
            return None
        if version in known:
            return Loaded(alias, version, known[version])
        return _load(alias, version, max_batch)

    return ModelSet(champion=get("champion"), canary=get("canary"), weight=now["canary_weight"],
                    loaded_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    versions={a: aliases.get(a) for a in ("champion", "canary")})
