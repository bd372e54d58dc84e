"""Benchmark: the drift job with the reference reused, against a plain Evidently DataDriftPreset
run over the same data, on 100,000 and 1,000,000 current rows.

    .venv/bin/python benchmarks/bench_drift.py [--sizes 100000 1000000] [--rounds 3] [--reference 20000]

Data: a reference of ``--reference`` rows of synthetic ad copy with scores (the champion's
training data as the monitor sees it), and prediction-log windows of each size drawn from
another seed of the same generator, with a real shift in part of them (exclamation marks on 30%
of the copy, a channel mix moved towards email, lower on-voice scores), so the verdicts include
both drifted and stable features.

Each job runs in a fresh process (its peak memory is its own), the two alternating, ``--rounds``
times per size; the figures are medians over rounds:
- ``ours``: ``ml.monitoring.drift.drift`` with the reference loaded from its cache (built once per
  champion; that one-off build is timed apart), the window read from Parquet, features computed,
  every column tested on all rows, drift.json and drift.html written (the HTML's charts on a
  sample of ``monitoring.drift.report_rows``);
- ``plain``: the same tables read from Parquet, the same features computed for both, then
  Evidently's ``DataDriftPreset`` on all rows and its HTML saved.
Embedding drift is off in both: the peer has none, and ours embeds a fixed-size sample
(``monitoring.drift.embedding_sample``) whatever the window size. The per-feature verdicts of the
two must agree, or the benchmark fails. Writes its section of benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))
from results import write_section  # noqa: E402


def params() -> dict:
    from ml.common.config import load_params

    p = load_params()
    p["monitoring"]["drift"]["embeddings"] = False
    return p


def synthetic(seed: int, n: int) -> pd.DataFrame:
    from ml.data.sources import open_source

    data = open_source(f"synthetic://?seed={seed}&n={n}&copy_share=1&problem_share=0", params()).data
    return pd.DataFrame([json.loads(line) for line in data.read("copy.jsonl").decode().splitlines()])


def window(pool: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` prediction-log rows drawn from ``pool``, with a shift in part of them."""
    rng = np.random.default_rng(seed)
    rows = pool.iloc[rng.integers(0, len(pool), n)].reset_index(drop=True)
    text = (rows["headline"] + " " + rows["body"]).to_numpy(object)
    loud = rng.random(n) < 0.3
    text[loud] = text[loud] + "!!"
    channel = np.where(rng.random(n) < 0.25, "email", rows["channel"].to_numpy(object))
    return pd.DataFrame({"ts": pd.Timestamp("2026-12-04T10:00:00Z"), "text": text, "brand": rows["brand"],
                         "industry": rows["industry"], "channel": channel, "audience": rows["audience"],
                         "p_on_voice": rng.beta(4, 2, n), "p_positive_engagement": rng.beta(2, 3, n),
                         "model_version": "1", "status": "ok"})


def prepare(work: Path, sizes: list[int], reference_rows: int) -> None:
    rng = np.random.default_rng(0)
    reference = synthetic(100, reference_rows)
    reference = reference.assign(p_on_voice=rng.beta(5, 2, len(reference)),
                                 p_positive_engagement=rng.beta(2, 3, len(reference)))
    reference.to_parquet(work / "reference.parquet")
    pool = synthetic(200, 20_000)
    for n in sizes:
        window(pool, n, n).to_parquet(work / f"current-{n}.parquet")


def peak_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(mode: str, work: Path, n: int) -> dict:
    """One job in this process; prints its figures as JSON."""
    from ml.monitoring.drift import CONTEXT, DESCRIPTORS, PREDICTIONS, Reference, drift, features

    import evidently.legacy.calculations.stattests.registry  # noqa: F401  imports (seconds) are not timed:
    import evidently.presets  # noqa: F401  a worker process pays them once, and both jobs need them

    p, out = params(), work / f"out-{mode}-{n}"
    started = time.perf_counter()
    if mode == "build":  # once per champion
        Reference.build(pd.read_parquet(work / "reference.parquet"), p).save(str(work / "cache"))
        return {"seconds": time.perf_counter() - started, "peak_mib": peak_mib()}
    current = pd.read_parquet(work / f"current-{n}.parquet")
    if mode == "ours":
        report = drift(Reference.load(str(work / "cache"), p), current, str(out), p)
        verdicts = {c: [f["drift"], f["value"]] for c, f in report["features"].items()}
    else:
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        numerical = DESCRIPTORS + PREDICTIONS
        ref, cur = features(pd.read_parquet(work / "reference.parquet")), features(current)
        definition = DataDefinition(numerical_columns=numerical, categorical_columns=CONTEXT)
        snapshot = Report([DataDriftPreset(columns=numerical + CONTEXT)]).run(
            Dataset.from_pandas(cur[numerical + CONTEXT], data_definition=definition),
            Dataset.from_pandas(ref[numerical + CONTEXT], data_definition=definition))
        out.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(out / "drift.html"))
        verdicts = {}
        for metric in snapshot.dict()["metrics"]:
            config = metric["config"]
            if config.get("type", "").endswith("ValueDrift"):
                value, threshold = float(metric["value"]), float(config["threshold"])
                p_value = "p_value" in config["method"]  # Evidently: a p-value drifts below, a distance at or above
                verdicts[config["column"]] = [value < threshold if p_value else value >= threshold, value]
    return {"seconds": time.perf_counter() - started, "peak_mib": peak_mib(), "verdicts": verdicts}


def run_child(mode: str, work: Path, n: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", mode, str(work), str(n)], cwd=REPO,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{mode} {n} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reference", type=int, default=20_000)
    ap.add_argument("--child", nargs=3, metavar=("MODE", "WORK", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, work, n = args.child
        print(json.dumps(child(mode, Path(work), int(n))))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"preparing a reference of {args.reference:,} rows and windows of {args.sizes} rows …", flush=True)
        prepare(work, args.sizes, args.reference)
        build = run_child("build", work, 0)
        print(f"reference built once: {build['seconds']:.1f} s, peak {build['peak_mib']:.0f} MiB", flush=True)
        rows, disagreements = [], []
        for n in args.sizes:
            runs = {"ours": [], "plain": []}
            for r in range(args.rounds):
                for mode in (("ours", "plain") if r % 2 == 0 else ("plain", "ours")):
                    runs[mode].append(run_child(mode, work, n))
                    print(f"  {n:>9,} rows, round {r + 1}, {mode:5}: {runs[mode][-1]['seconds']:6.1f} s, "
                          f"peak {runs[mode][-1]['peak_mib']:6.0f} MiB", flush=True)
            ours, plain = runs["ours"][0]["verdicts"], runs["plain"][0]["verdicts"]
            disagreements += [f"{n}: {c} ours {ours[c]} plain {plain.get(c)}" for c in ours
                              if plain.get(c, [None])[0] != ours[c][0]]
            med = {m: {k: statistics.median(x[k] for x in v) for k in ("seconds", "peak_mib")} for m, v in runs.items()}
            rows.append((n, med, sorted(c for c, v in ours.items() if v[0]), len(ours)))
    lines = [f"## Drift: the job with the reference reused against a plain Evidently DataDriftPreset run\n\nCommand: `.venv/bin/python benchmarks/bench_drift.py --sizes {' '.join(map(str, args.sizes))} "
             f"--rounds {args.rounds} --reference {args.reference}` ({date.today()}, medians of {args.rounds} "
             "rounds, each job in a fresh process, alternating).\n",
             f"Reference: {args.reference:,} rows with scores; built once per champion in {build['seconds']:.1f} s "
             f"(peak {build['peak_mib']:.0f} MiB) and loaded from the cache by every window. Embedding drift off in "
             "both (see the script's docstring).\n",
             "| current rows | ours: wall s | plain Evidently: wall s | speed-up | ours: peak MiB | plain: peak MiB "
             "| verdicts agree | drifted features |", "|---|---|---|---|---|---|---|---|"]
    for n, med, drifted, total in rows:
        lines.append(f"| {n:,} | {med['ours']['seconds']:.1f} | {med['plain']['seconds']:.1f} | "
                     f"{med['plain']['seconds'] / med['ours']['seconds']:.2f}× | {med['ours']['peak_mib']:.0f} | "
                     f"{med['plain']['peak_mib']:.0f} | {'yes' if not any(d.startswith(f'{n}:') for d in disagreements) else 'NO'}"
                     f" ({total} features) | {', '.join(drifted)} |")
    lines.append("\nBoth include reading the window from Parquet and computing its text descriptors (the same "
                 "code); ours tests every column on all rows with Evidently's own default tests and draws the "
                 "HTML's charts from a sample of `monitoring.drift.report_rows`.")
    text = "\n".join(lines)
    print(text)
    write_section("drift", text)
    if disagreements:
        print("per-feature verdicts disagree:\n" + "\n".join(disagreements), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
