"""A bounded HTTP load generator for the scoring service (loopback only): N clients, each with a
persistent connection, send ``POST /v1/score`` until a request count or a time limit is reached.

    python benchmarks/loadgen.py --url http://127.0.0.1:8080/v1/score --clients 8 --requests 2000 --batch 1

Prints (and with --out writes) JSON: requests, failures by status, latency p50/p95/p99 in ms,
throughput, and how many answers each model version gave. Used by the benchmark and by the
reload test, which runs it as a second process.
"""
from __future__ import annotations

import argparse
import http.client
import json
import signal
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

import numpy as np

ITEMS = [
    {"text": "Timeless jacket, tailored and refined for every day.", "brand": "Atelier Nord", "industry": "fashion",
     "channel": "social", "audience": "returning_customers", "cta": "Discover"},
    {"text": "Cozy handmade throw in natural wool, calm evenings at home.", "brand": "Maison Verte",
     "industry": "home", "channel": "email", "audience": "new_visitors", "cta": "Shop now"},
    {"text": "Engineered for speed: precise, powerful, pro-grade earbuds.", "brand": "Voltix",
     "industry": "electronics", "channel": "search", "audience": "lapsed_customers", "cta": "Buy"},
    {"text": "Bold fresh drop, loud colours, hyped for the weekend.", "brand": "Street Pulse", "industry": "fashion",
     "channel": "display", "audience": "new_visitors", "cta": "Get yours"},
]


def body(i: int, batch: int, key_prefix: str, fmt: str) -> bytes:
    items = [ITEMS[(i + j) % len(ITEMS)] for j in range(batch)]
    if fmt == "mlflow":  # `mlflow models serve` of the same model: the pyfunc's DataFrame input
        columns = ["brand", "industry", "channel", "audience", "cta", "headline", "body"]
        data = [[it["brand"], it["industry"], it["channel"], it["audience"], it["cta"], "", it["text"]] for it in items]
        return json.dumps({"dataframe_split": {"columns": columns, "data": data}}).encode()
    return json.dumps({"items": items, "request_key": f"{key_prefix}{i}"}).encode()


def run(url: str, clients: int, requests: int, seconds: float, batch: int, key_prefix: str,
        fmt: str = "service", stop: threading.Event | None = None) -> dict:
    stop = stop or threading.Event()
    parts = urlsplit(url)
    deadline = time.monotonic() + seconds
    counter = iter(range(requests))
    lock = threading.Lock()
    latencies, statuses, versions = [], Counter(), Counter()

    def client():
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        while time.monotonic() < deadline and not stop.is_set():
            with lock:
                i = next(counter, None)
            if i is None:
                break
            payload = body(i, batch, key_prefix, fmt)
            start = time.perf_counter()
            try:
                conn.request("POST", parts.path, payload, {"Content-Type": "application/json"})
                response = conn.getresponse()
                answer = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                status, answer = type(exc).__name__, b""
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                statuses[str(status)] += 1
                if status == 200:
                    latencies.append(elapsed)
                    versions[json.loads(answer).get("version", "?")] += 1
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ok = np.array(latencies) if latencies else np.array([np.nan])
    return {"clients": clients, "batch": batch, "requests": sum(statuses.values()),
            "failures": sum(n for s, n in statuses.items() if s != "200"), "statuses": dict(statuses),
            "p50_ms": float(np.percentile(ok, 50)), "p95_ms": float(np.percentile(ok, 95)),
            "p99_ms": float(np.percentile(ok, 99)), "throughput_rps": len(latencies) / wall,
            "wall_s": wall, "versions": dict(versions)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=60,
                   help="stop after this long even if requests remain (SIGTERM stops it early, results kept)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--key-prefix", default="load-")
    p.add_argument("--format", choices=["service", "mlflow"], default="service",
                   help="request body: this service's, or `mlflow models serve`'s dataframe_split")
    p.add_argument("--out")
    a = p.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    result = run(a.url, a.clients, a.requests, a.seconds, a.batch, a.key_prefix, a.format, stop)
    text = json.dumps(result, indent=2)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
