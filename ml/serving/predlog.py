"""The prediction log: what the scoring service answered, for canary analysis and drift monitoring.

Parquet parts under ``<log_uri>/date=YYYY-MM-DD/hour=HH/``, one row per scored item (or per
failed request): timestamp, request key, model version and alias, the item's fields, the
scores, the latency and the status. Parts are written whole and atomically, so a reader never
sees half a part; a reader asks for a time window and reads only the hours it covers.
"""
from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone

import pandas as pd

from ml.common import io

COLUMNS = ["ts", "request_key", "model_version", "alias", "text", "brand", "industry", "channel", "audience",
           "p_negative_engagement", "p_neutral", "p_positive_engagement", "p_on_voice", "latency_ms", "status"]


def partition(uri: str, ts: datetime) -> str:
    return io.join(uri, f"date={ts:%Y-%m-%d}", f"hour={ts:%H}")


class PredictionLog:
    """A buffer of rows written as a part when it holds ``flush_rows`` rows, when ``flush()`` is
    called (the service's timer calls it every few seconds) and at shutdown."""

    def __init__(self, uri: str, flush_rows: int = 256):
        self.uri, self.flush_rows = uri, flush_rows
        self._rows: list[dict] = []
        self._lock = threading.Lock()
        self.written = 0

    def append(self, rows: list[dict]) -> None:
        with self._lock:
            self._rows.extend(rows)
            full = len(self._rows) >= self.flush_rows
        if full:
            self.flush()

    def flush(self) -> int:
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        frame = pd.DataFrame(rows, columns=COLUMNS)
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        for hour, part in frame.groupby(frame["ts"].dt.floor("h")):
            first = part["ts"].min()
            name = f"part-{first:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
            io.write_parquet(io.join(partition(self.uri, hour.to_pydatetime()), name), part.reset_index(drop=True))
        self.written += len(rows)
        return len(rows)


def read_window(uri: str, start: datetime, end: datetime, columns: list[str] = COLUMNS) -> pd.DataFrame:
    """Rows with ``start <= ts < end`` (both timezone-aware), read from the hours they cover, of
    any table kept in this layout (the prediction log, the outcome feed)."""
    hour = start.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    frames = []
    while hour < end:
        for key in io.list_keys(partition(uri, hour)):
            if key.endswith(".parquet"):
                frames.append(io.read_parquet(key))
        hour += timedelta(hours=1)
    if not frames:
        return pd.DataFrame(columns=columns)
    frame = pd.concat(frames, ignore_index=True)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame[(frame["ts"] >= start) & (frame["ts"] < end)].sort_values("ts").reset_index(drop=True)
