"""Benchmark: the scoring service against `mlflow models serve` of the same model version.

    .venv/bin/python benchmarks/bench_serving.py [--requests 400] [--rounds 3]

1. Trains a small adapter (one epoch on 300 hidden-truth rows at the production sequence length:
   latency depends on shapes, not on how well the model learnt), registers it in a throw-away
   MLflow store and makes it champion.
2. Starts both servers on loopback: `python -m ml serve` and `mlflow models serve -m
   models:/creative-copy-scorer/1 --env-manager local` (the same pyfunc the registry holds).
3. For batch 1 and 4, with 1 and 8 concurrent clients (benchmarks/loadgen.py, persistent
   connections), sends ``--requests`` requests to each server after a warm-up, in rounds that
   alternate the servers; reports the median over rounds of p50/p95/p99 latency and throughput.

The budget is p95 ≤ 20 ms at batch 1 over HTTP. Writes its section of benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))
from loadgen import run  # noqa: E402
from results import write_section  # noqa: E402
from tests.conftest import LENIENT, free_port, truth_frame  # noqa: E402

BUDGET_MS = 20.0


def wait_ready(url: str, proc, seconds: float = 180) -> None:
    import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:4]} exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {seconds} s")


def prepare(work: Path) -> None:
    from ml.common.config import load_params
    from ml.evaluation.evaluate import evaluate
    from ml.registry import release
    from ml.registry.tracking import track_and_register
    from ml.training.train import train

    params = load_params()
    params = {**params, "training": {**params["training"], "epochs": 1},
              "evaluation": {**params["evaluation"], **LENIENT}}
    truth_frame("synthetic://?seed=5&n=300&copy_share=1&problem_share=0", params).to_parquet(work / "labelled.parquet")
    train(str(work / "labelled.parquet"), str(work / "train"), params)
    evaluate(str(work / "train"), str(work / "labelled.parquet"), str(work / "eval"), params)
    (work / "manifest").write_bytes(b"benchmark")
    r = track_and_register(str(work / "train"), str(work / "eval"), labelled_uri=str(work / "labelled.parquet"),
                           dataset_version="benchmark", manifest_uri=str(work / "manifest"), params=params)
    release.start_canary(release.Actor("benchmark", "benchmark"), audit_uri=str(work / "audit"),
                         ledger_uri=str(work / "ledger"), weight=0.1, version=r["version"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=400, help="requests per measurement")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    os.environ["CREATIVE_MLFLOW_ARTIFACTS"] = (work / "artifacts").as_uri()
    prepare(work)
    # `mlflow models serve` execs `uvicorn` from PATH: the environment's bin folder must be on it
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    ours, theirs = free_port(), free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "ml", "serve", "--port", str(ours), "--log-uri",
                               str(work / "predictions")], cwd=REPO, env=env,
                              stdout=open(work / "service.log", "wb"), stderr=subprocess.STDOUT),
             subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m",
                               "models:/creative-copy-scorer/1", "-h", "127.0.0.1", "-p", str(theirs),
                               "--env-manager", "local"], cwd=REPO, env=env,
                              stdout=open(work / "mlflow-serve.log", "wb"), stderr=subprocess.STDOUT)]
    try:
        wait_ready(f"http://127.0.0.1:{ours}/readyz", procs[0])
        wait_ready(f"http://127.0.0.1:{theirs}/ping", procs[1])
        servers = {"ml serve (/v1/score)": (f"http://127.0.0.1:{ours}/v1/score", "service"),
                   "mlflow models serve (/invocations)": (f"http://127.0.0.1:{theirs}/invocations", "mlflow")}
        for url, fmt in servers.values():  # warm-up: traces, XLA compiles, connection pools
            for batch in (1, 4):
                warm = run(url, 2, 40, 120, batch, "warm-", fmt)
                assert warm["failures"] == 0, (url, warm)
        results: dict = {}
        for rnd in range(args.rounds):
            for batch in (1, 4):
                for clients in (1, 8):
                    for name, (url, fmt) in servers.items():
                        r = run(url, clients, args.requests, 300, batch, f"r{rnd}-", fmt)
                        assert r["failures"] == 0, (name, r)
                        results.setdefault((name, batch, clients), []).append(r)
                        print(f"round {rnd + 1} {name} batch {batch} clients {clients}: p50 {r['p50_ms']:.1f} "
                              f"p95 {r['p95_ms']:.1f} p99 {r['p99_ms']:.1f} ms, {r['throughput_rps']:.0f} req/s",
                              flush=True)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)

    def med(key, field):
        return statistics.median(r[field] for r in results[key])

    rows, ratios = [], {}
    for batch in (1, 4):
        for clients in (1, 8):
            for name in servers:
                k = (name, batch, clients)
                rows.append(f"| {name} | {batch} | {clients} | {med(k, 'p50_ms'):.1f} | {med(k, 'p95_ms'):.1f} | "
                            f"{med(k, 'p99_ms'):.1f} | {med(k, 'throughput_rps'):.0f} |")
            a, b = (med((n, batch, clients), "p95_ms") for n in servers)
            ratios[(batch, clients)] = b / a
    ours_p95 = med(("ml serve (/v1/score)", 1, 1), "p95_ms")
    cmd = f".venv/bin/python benchmarks/bench_serving.py --requests {args.requests} --rounds {args.rounds}"
    text = "\n".join([
        "## Serving: the scoring service against `mlflow models serve` of the same model version", "",
        f"Machine: {os.cpu_count()} cores. Produced by `{cmd}` on {date.today().isoformat()}. One model version "
        "(production sequence length 64, rank-4 LoRA), both servers on loopback in the same run; "
        f"{args.requests} requests per measurement after a warm-up, {args.rounds} rounds alternating the servers, "
        "medians over rounds. Clients: benchmarks/loadgen.py with persistent connections; 8 clients run concurrently.",
        "",
        "| server | batch | clients | p50 ms | p95 ms | p99 ms | requests/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows, "",
        f"Budget: p95 ≤ {BUDGET_MS:.0f} ms at batch 1 over HTTP. The service's p95 at batch 1, one client: "
        f"{ours_p95:.1f} ms, {abs(BUDGET_MS - ours_p95):.1f} ms {'below' if ours_p95 <= BUDGET_MS else 'over'} "
        "the budget. "
        "`mlflow models serve` p95 ÷ the service's p95: " +
        ", ".join(f"batch {b} × {c} clients {r:.2f}" for (b, c), r in ratios.items()) + ".",
    ])
    write_section("serving", text)
    print(text)
    print(json.dumps({f"{k[0]}|b{k[1]}|c{k[2]}": [r["p95_ms"] for r in v] for k, v in results.items()}))


if __name__ == "__main__":
    main()
