"""The scoring service (FastAPI): ``POST /v1/score`` answers with the champion or, for a share
of request keys, the canary; ``/healthz``, ``/readyz``, ``/metrics``; admin endpoints behind a
bearer token.

The request path is kept lean for batch-1 latency: the body is checked by hand (clear 4xx for
every bad input), the model is called through compiled functions (tokenising included) on one
worker thread that scores together what queued up while it was busy, and the registry is never
asked during a request: a background thread re-reads aliases and weights every
``reload_seconds`` and swaps the snapshot.
"""
from __future__ import annotations

import hmac
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ml.registry.tracking import MODEL_NAME
from ml.serving.models import ModelSet, load
from ml.serving.predlog import PredictionLog
from ml.training.model import ENGAGEMENT_CLASSES

log = logging.getLogger(__name__)
FIELDS = ("text", "brand", "industry", "channel", "audience")
LATENCY_BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5)


@dataclass
class Settings:
    max_items: int
    max_text_bytes: int
    max_batch_items: int
    reload_seconds: float
    log_uri: str
    log_flush_rows: int
    log_flush_seconds: float
    admin_token: str | None

    @classmethod
    def from_params(cls, params: dict, log_uri: str | None = None) -> "Settings":
        from ml.common import io
        from ml.common.config import data_root

        s = params["serving"]
        log_uri = log_uri or s.get("log_uri") or io.join(data_root(), "predictions")
        return cls(int(s["max_items"]), int(s["max_text_bytes"]), int(s["max_batch_items"]), float(s["reload_seconds"]),
                   log_uri, int(s["log_flush_rows"]), float(s["log_flush_seconds"]),
                   os.environ.get("SCORING_ADMIN_TOKEN") or None)


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def parse(body: bytes, settings: Settings) -> tuple[list[dict], str | None]:
    """The items and request key of a scoring request, or ``BadRequest`` with a clear reason."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(400, f"the body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("items"), list):
        raise BadRequest(422, 'expected {"items": [{"text", "brand", "industry", "channel", "audience"}, …], '
                              '"request_key": "…"}')
    items, key = payload["items"], payload.get("request_key")
    if key is not None and not isinstance(key, str):
        raise BadRequest(422, "request_key must be a string")
    if not items:
        raise BadRequest(422, "items is empty: send at least one item")
    if len(items) > settings.max_items:
        raise BadRequest(413, f"{len(items)} items in one request; at most {settings.max_items}")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(422, f"items[{i}] is not an object")
        missing = [f for f in FIELDS if not isinstance(item.get(f), str) or not item[f].strip()]
        if missing:
            raise BadRequest(422, f"items[{i}] lacks {', '.join(missing)} (non-empty strings)")
        size = len(item["text"].encode("utf-8"))
        if size > settings.max_text_bytes:
            raise BadRequest(413, f"items[{i}].text is {size} bytes; at most {settings.max_text_bytes}")
    return items, key


class Service:
    """The state behind the app: the model snapshot, the loader thread, the prediction log, metrics."""

    def __init__(self, settings: Settings, loader=load):
        self.settings, self.loader = settings, loader
        self.models = ModelSet()
        self.batcher = None  # the asyncio queue to the model worker, made in the app's event loop
        self.log = PredictionLog(settings.log_uri, settings.log_flush_rows)
        self.metrics = CollectorRegistry()
        labels = ["model_version", "alias"]
        self.requests = Counter("scoring_requests", "Scoring requests answered", labels + ["status"],
                                registry=self.metrics)
        self.items = Counter("scoring_items", "Items scored", labels, registry=self.metrics)
        self.latency = Histogram("scoring_latency_seconds", "Scoring latency (model call, tokenising included)",
                                 labels, buckets=LATENCY_BUCKETS, registry=self.metrics)
        self.rejected = Counter("scoring_rejected_requests", "Requests refused with a 4xx", ["status"],
                                registry=self.metrics)
        self.weight = Gauge("scoring_canary_weight", "Share of request keys routed to the canary",
                            registry=self.metrics)
        self.reloads = Counter("scoring_reloads", "Registry re-reads", ["outcome"], registry=self.metrics)
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle
    def reload(self) -> ModelSet:
        with self._reload_lock:
            try:
                fresh = self.loader(self.models, max_batch=self.settings.max_batch_items + self.settings.max_items)
            except Exception:
                self.reloads.labels("failed").inc()
                log.exception("reload failed; still answering with %s", self.models.versions)
                raise
            if fresh.versions != self.models.versions or fresh.weight != self.models.weight:
                log.info("models now %s, canary weight %.2f", fresh.versions, fresh.weight)
            self.models = fresh  # one reference swap: requests in flight keep their snapshot
            self.weight.set(fresh.weight)
            self.reloads.labels("ok").inc()
            return fresh

    def start(self) -> None:
        def every(seconds: float, fn):
            while not self._stop.wait(seconds):
                try:
                    fn()
                except Exception:  # logged in reload(); the loop must outlive a registry outage
                    pass

        def first_then_poll():
            while not self._stop.is_set():
                try:
                    self.reload()
                    break
                except Exception:
                    self._stop.wait(min(5.0, self.settings.reload_seconds))
            every(self.settings.reload_seconds, self.reload)

        for target in (first_then_poll, lambda: every(self.settings.log_flush_seconds, self.log.flush)):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self.log.flush()

    # ------------------------------------------------------------------ the request path
    async def score(self, items: list[dict], key: str | None) -> dict:
        """Route, queue for the model, answer. Requests that arrive while the model is busy are
        scored together in the next call (opportunistic batching: a lone request never waits
        for company, a burst shares model calls instead of queueing one by one)."""
        import asyncio

        chosen = self.models.route(key)
        ts = datetime.now(timezone.utc)
        start = time.perf_counter()
        future = asyncio.get_running_loop().create_future()
        await self.batcher.put((chosen, items, future))
        try:
            out = await future
        except Exception:
            elapsed = (time.perf_counter() - start) * 1000
            self.requests.labels(chosen.version, chosen.alias, "error").inc()
            self.log.append([self._row(ts, key, chosen, item, None, elapsed, "error") for item in items])
            raise
        elapsed = (time.perf_counter() - start) * 1000
        self.requests.labels(chosen.version, chosen.alias, "ok").inc()
        self.items.labels(chosen.version, chosen.alias).inc(len(items))
        self.latency.labels(chosen.version, chosen.alias).observe(elapsed / 1000)
        results = [{"engagement": dict(zip(ENGAGEMENT_CLASSES, map(float, e))), "brand_voice": float(v)}
                   for e, v in zip(out["engagement"], out["brand_voice"])]
        self.log.append([self._row(ts, key, chosen, item, r, elapsed, "ok") for item, r in zip(items, results)])
        return {"model": MODEL_NAME, "version": chosen.version, "alias": chosen.alias, "request_key": key,
                "results": results}

    async def run_batches(self) -> None:
        """The model's single worker: take what is queued (up to ``max_batch_items`` items), score
        it per model version in one call each, hand every request its slice."""
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="model") as executor:
            while True:
                jobs = [await self.batcher.get()]
                size = len(jobs[0][1])
                while not self.batcher.empty() and size < self.settings.max_batch_items:
                    jobs.append(self.batcher.get_nowait())
                    size += len(jobs[-1][1])
                by_model: dict[str, list] = {}
                for job in jobs:
                    by_model.setdefault(job[0].version, []).append(job)
                for group in by_model.values():
                    items = [item for _, job_items, _ in group for item in job_items]
                    try:
                        out = await loop.run_in_executor(executor, group[0][0].scorer.score_items, items)
                    except Exception as exc:  # every request of the call fails with it (500), the loop goes on
                        for _, _, future in group:
                            future.set_exception(exc)
                        continue
                    lo = 0
                    for _, job_items, future in group:
                        hi = lo + len(job_items)
                        future.set_result({k: v[lo:hi] for k, v in out.items()})
                        lo = hi

    @staticmethod
    def _row(ts, key, chosen, item, result, elapsed, status) -> dict:
        scores = ({f"p_{c}": result["engagement"][c] for c in ENGAGEMENT_CLASSES}
                  | {"p_on_voice": result["brand_voice"]}) if result else {}
        return {"ts": ts, "request_key": key, "model_version": chosen.version, "alias": chosen.alias,
                **{f: item[f] for f in FIELDS}, **scores, "latency_ms": elapsed, "status": status}


def create_app(settings: Settings, loader=load, set_weight=None) -> FastAPI:
    """The FastAPI app. ``set_weight(weight, by, reason)`` changes the canary weight in the
    registry (audited); the default is ``ml.registry.release.set_weight``."""
    from contextlib import asynccontextmanager

    service = Service(settings, loader)

    @asynccontextmanager
    async def lifespan(_app):
        import asyncio

        service.batcher = asyncio.Queue()
        worker = asyncio.create_task(service.run_batches())
        service.start()
        yield
        worker.cancel()
        service.stop()

    app = FastAPI(title="Creative copy scorer", lifespan=lifespan)
    app.state.service = service

    def refuse(status: int, message: str) -> JSONResponse:
        service.rejected.labels(str(status)).inc()
        return JSONResponse({"error": message}, status_code=status)

    @app.post("/v1/score")
    async def score(request: Request):
        body = await request.body()
        if len(body) > settings.max_items * (settings.max_text_bytes + 1024) + 1024:
            return refuse(413, f"request body of {len(body)} bytes is too large")
        try:
            items, key = parse(body, settings)
        except BadRequest as exc:
            return refuse(exc.status, exc.message)
        if not service.models.ready:
            return refuse(503, "no model loaded yet (is there a champion in the registry?)")
        return await service.score(items, key)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz():
        m = service.models
        body = {"ready": m.ready, "models": m.versions, "canary_weight": m.weight, "loaded_at": m.loaded_at}
        return JSONResponse(body, status_code=200 if m.ready else 503)

    @app.get("/metrics")
    def metrics():
        return Response(generate_latest(service.metrics), media_type=CONTENT_TYPE_LATEST)

    def authorised(request: Request) -> JSONResponse | None:
        if not settings.admin_token:
            return JSONResponse({"error": "admin endpoints are off: SCORING_ADMIN_TOKEN is not set"}, status_code=403)
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return JSONResponse({"error": "Authorization: Bearer <token> required"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(header[7:].strip().encode(), settings.admin_token.encode()):
            return JSONResponse({"error": "wrong token"}, status_code=403)
        return None

    @app.post("/admin/reload")
    def admin_reload(request: Request):
        if (denied := authorised(request)) is not None:
            return denied
        m = service.reload()
        return {"models": m.versions, "canary_weight": m.weight, "loaded_at": m.loaded_at}

    @app.post("/admin/weights")
    async def admin_weights(request: Request):
        if (denied := authorised(request)) is not None:
            return denied
        try:
            body = json.loads(await request.body())
            weight, by, reason = float(body["canary_weight"]), str(body["by"]), str(body["reason"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": 'expected {"canary_weight": 0..1, "by": "…", "reason": "…"}'},
                                status_code=422)
        from ml.registry.release import ReleaseError

        try:
            (set_weight or _registry_set_weight)(weight, by, reason)
        except ReleaseError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        m = service.reload()
        return {"models": m.versions, "canary_weight": m.weight, "loaded_at": m.loaded_at}

    return app


def _registry_set_weight(weight: float, by: str, reason: str) -> None:
    from ml.common.config import load_params
    from ml.registry import release

    audit = os.environ.get("CREATIVE_RELEASE_AUDIT_URI") or load_params()["release"]["audit_uri"]
    release.set_weight(release.Actor(by, reason), weight, audit_uri=audit)
