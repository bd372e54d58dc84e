"""Canary analysis: the canary against the champion on the same window of the prediction log.

Both models answer the same kind of traffic in the same window (routing is a hash of the
request key), so their figures are comparable: error rate, latency p95 (alone and against the
champion's), and the shift of the canary's score distribution against the champion's (the
two-sample Kolmogorov–Smirnov statistic of the on-voice and positive-engagement scores). A
shift counts only when it is larger than ``max_score_shift`` and also larger than the KS
critical value at the 1% level for the two sample sizes, so a thin window does not raise a
false alarm from sampling noise alone.
``check_canary`` is the pure gate; ``analyse`` reads the window and applies it.
"""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from ml.common.verdict import Verdict

SCORES = ["p_on_voice", "p_positive_engagement"]


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance between the two empirical distribution functions (0: same, 1: disjoint)."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    if not len(a) or not len(b):
        return float("nan")
    grid = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b))))


KS_C_ALPHA = 1.628  # c(α) of the two-sample KS test at α = 0.01


def ks_critical(n: int, m: int) -> float:
    return KS_C_ALPHA * float(np.sqrt((n + m) / (n * m))) if n and m else float("inf")


def summarise(log: pd.DataFrame, version: str) -> dict:
    rows = log[log["model_version"].astype(str) == str(version)]
    ok = rows[rows["status"] == "ok"]
    return {"version": str(version), "requests": int(len(rows)), "errors": int((rows["status"] != "ok").sum()),
            "error_rate": float((rows["status"] != "ok").mean()) if len(rows) else float("nan"),
            "p95_ms": float(np.percentile(ok["latency_ms"], 95)) if len(ok) else float("nan")}


def compare(log: pd.DataFrame, champion: str, canary: str) -> dict:
    ok = log[log["status"] == "ok"]
    versions = ok["model_version"].astype(str)
    can, champ = ok[versions == str(canary)], ok[versions == str(champion)]
    shifts = {s: ks_statistic(can[s], champ[s]) for s in SCORES}
    return {"champion": summarise(log, champion), "canary": summarise(log, canary), "score_shift": shifts,
            "score_shift_critical": ks_critical(len(can), len(champ))}


def check_canary(stats: dict, th: dict) -> Verdict:
    """Enough traffic on both; canary error rate, p95 and p95 against the champion's, and the
    score shift against the champion's within the thresholds."""
    reasons = []
    can, champ = stats["canary"], stats["champion"]
    for name, s in (("canary", can), ("champion", champ)):
        if s["requests"] < th["min_requests"]:
            reasons.append(f"{name} answered {s['requests']} requests in the window < {th['min_requests']}: "
                           "not enough traffic to judge")
    if reasons:
        return Verdict(False, reasons, stats)
    if can["error_rate"] > th["max_error_rate"]:
        reasons.append(f"canary error rate {can['error_rate']:.2%} > {th['max_error_rate']:.2%}")
    if not can["p95_ms"] <= th["max_p95_ms"]:
        reasons.append(f"canary latency p95 {can['p95_ms']:.1f} ms > {th['max_p95_ms']} ms")
    if champ["p95_ms"] > 0 and can["p95_ms"] > th["max_p95_ratio"] * champ["p95_ms"]:
        reasons.append(f"canary latency p95 {can['p95_ms']:.1f} ms > {th['max_p95_ratio']} × the champion's "
                       f"{champ['p95_ms']:.1f} ms")
    bound = max(th["max_score_shift"], stats["score_shift_critical"])
    for score, shift in stats["score_shift"].items():
        if not shift <= bound:
            reasons.append(f"{score} distribution moved against the champion's: KS {shift:.3f} > {bound:.3f} "
                           f"(max_score_shift {th['max_score_shift']}, 1% critical value "
                           f"{stats['score_shift_critical']:.3f})")
    return Verdict(not reasons, reasons, stats)


def window_ready(log_uri: str, start: datetime, now: datetime, minutes: float, max_wait_minutes: float,
                 champion: str, canary: str, min_requests: int) -> tuple[bool, dict]:
    """Whether the window ``[start, now)`` can be judged: at least ``minutes`` long and with
    ``min_requests`` on both models, or already ``max_wait_minutes`` long (then the analysis
    judges what there is, and too little traffic fails it). Returns the answer and the counts."""
    from ml.serving.predlog import read_window

    elapsed = (now - start).total_seconds() / 60
    if elapsed < minutes:
        return False, {}
    versions = read_window(log_uri, start, now)["model_version"].astype(str)
    counts = {name: int((versions == str(v)).sum()) for name, v in (("champion", champion), ("canary", canary))}
    return min(counts.values()) >= min_requests or elapsed >= max_wait_minutes, counts


def analyse(log_uri: str, start: datetime, end: datetime, champion: str, canary: str, th: dict) -> dict:
    """Read the window ``[start, end)`` of the prediction log and judge the canary."""
    from ml.serving.predlog import read_window

    verdict = check_canary(compare(read_window(log_uri, start, end), champion, canary), th)
    return {"window": [start.isoformat(), end.isoformat()], **verdict.to_dict()}
