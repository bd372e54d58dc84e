"""Benchmark: acquisition + licence check of N synthetic assets, and DAG parse times.

    .venv/bin/python benchmarks/bench_acquisition.py [--n 10000] [--image-size 512] [--repeats 5]

1. Writes the synthetic source (N inputs, half 512×512 images, half copy rows) to a folder
   (not timed), then times, each in a fresh process: ``python -m ml acquire`` on that folder,
   ``python -m ml licence-check`` on its manifest, and the peer: reading and SHA-256-hashing
   every file and copying it once (the I/O floor any acquisition pays). Peak memory is the
   child's max RSS.
2. Parses each DAG file in a fresh interpreter ``--repeats`` times against a bare
   ``python -c "import airflow.sdk"`` in the same run; medians and the ratio.

Writes the figures to benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from results import write_section  # noqa: E402
PY = sys.executable

PEER = """
import hashlib, shutil, sys
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
for p in sorted(src.rglob('*')):
    if p.is_file():
        data = p.read_bytes()
        h = hashlib.sha256(data).hexdigest()
        out = dst / h[:2] / h
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
"""


def timed(cmd: list[str], env=None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB of this child alone, stdout) of one fresh process."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd} failed:\n{err.read()[-3000:]}")
        return wall, usage.ru_maxrss / 1024, out.read().strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from ml.data.synthetic import generate

    work = Path(tempfile.mkdtemp(prefix="bench-acq-"))
    src = work / "source"
    t0 = time.perf_counter()
    data = generate(42, args.n, image_size=args.image_size)
    data.write_to(src)
    synth_s = time.perf_counter() - t0
    images = sum(1 for r in data.files if r.startswith("images/"))
    source_mib = sum(p.stat().st_size for p in src.rglob("*") if p.is_file()) / 2**20

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    acq_s, acq_mib, acq_out = timed([PY, "-m", "ml", "-q", "acquire", "--source", str(src), "--out", str(work / "acq")], env)
    lic_s, lic_mib, lic_out = timed([PY, "-m", "ml", "-q", "licence-check", "--manifest", str(work / "acq" / "manifest.parquet"),
                                     "--out", str(work / "ok"), "--ledger", str(work / "ledger")], env)
    peer_s, peer_mib, _ = timed([PY, "-c", PEER, str(src), str(work / "peer")])
    report = json.loads((work / "acq" / "report.json").read_text())

    def parse_times(code: str) -> list[float]:
        return [timed([PY, "-c", code], env)[0] for _ in range(args.repeats)]

    bare = statistics.median(parse_times("import airflow.sdk"))
    dags = {}
    for path in sorted((REPO / "dags").glob("*.py")):
        dags[path.stem] = statistics.median(parse_times(f"import runpy; runpy.run_path({str(path)!r})"))

    total = acq_s + lic_s
    cmd = f".venv/bin/python benchmarks/bench_acquisition.py --n {args.n} --image-size {args.image_size} --repeats {args.repeats}"
    lines = [
        "## Acquisition + licence check", "",
        f"Machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}. Produced by `{cmd}` on "
        f"{time.strftime('%Y-%m-%d')}. Single runs of the pipeline stages (each a fresh process); parse times are "
        f"medians of {args.repeats} fresh interpreters. Shared, noisy machine: read ratios, not absolute times.", "",
        f"Input: {args.n} synthetic inputs ({images} images of {args.image_size}×{args.image_size}, "
        f"{args.n - images} ad-copy rows; {report['quarantined']} of them quarantined at intake), {source_mib:.0f} MiB on disk "
        f"(generated in {synth_s:.0f} s, not timed).", "",
        "| step | wall s | peak RSS MiB | inputs/s |", "|---|---:|---:|---:|",
        f"| `python -m ml acquire` | {acq_s:.1f} | {acq_mib:.0f} | {args.n / acq_s:.0f} |",
        f"| `python -m ml licence-check` | {lic_s:.1f} | {lic_mib:.0f} | {report['accepted'] / lic_s:.0f} |",
        f"| acquire + licence check | {total:.1f} | {max(acq_mib, lic_mib):.0f} | {args.n / total:.0f} |",
        f"| peer: read + SHA-256 + copy every file | {peer_s:.1f} | {peer_mib:.0f} | {args.n / peer_s:.0f} |", "",
        f"Acquisition costs {acq_s / peer_s:.1f}× the I/O floor (the rest is decoding every image to prove it is "
        f"whole, metadata and copy-row checks, Parquet). acquire: `{acq_out}`", "",
        f"licence-check: `{lic_out}`", "",
        "### DAG parse time", "",
        "| file | median s | vs bare `import airflow.sdk` |", "|---|---:|---:|",
        f"| bare `python -c \"import airflow.sdk\"` | {bare:.2f} | 1.00× |",
        *[f"| dags/{name}.py | {t:.2f} | {t / bare:.2f}× |" for name, t in dags.items()], "",
    ]
    write_section("acquisition", "\n".join(lines))
    shutil.rmtree(work)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
