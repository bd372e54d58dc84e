"""Progress lines for long work, written through logging so Airflow's task log shows them."""
from __future__ import annotations

import logging
import time

log = logging.getLogger("ml.progress")


class Progress:
    def __init__(self, label: str, total: int | None = None, every_s: float = 5.0):
        self.label, self.total, self.every_s = label, total, every_s
        self.done = 0
        self.started = self._last = time.monotonic()

    def step(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._emit(now)

    def finish(self) -> None:
        self._emit(time.monotonic(), final=True)

    def _emit(self, now: float, final: bool = False) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        of = f"/{self.total} ({100 * self.done / self.total:.0f}%)" if self.total else ""
        verb = "done" if final else "…"
        log.info("%s %s %d%s in %.1fs, %.0f/s", self.label, verb, self.done, of, elapsed, rate)
