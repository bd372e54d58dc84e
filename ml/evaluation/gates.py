"""The evaluation gates: pure ``check_*`` functions returning a Verdict; thresholds come in.

Each takes figures already measured (see :mod:`ml.evaluation.metrics`) and the thresholds of
``params.yaml`` → ``evaluation``; none measures, loads a model or raises on a failing model.
"""
from __future__ import annotations

import math
import re

import pandas as pd

from ml.common.verdict import Verdict


def _bad(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def check_absolute(metrics: dict, slices: pd.DataFrame, th: dict) -> Verdict:
    """Engagement macro-F1, brand-voice accuracy per industry, calibration."""
    reasons = []
    if _bad(metrics["macro_f1"]) or metrics["macro_f1"] < th["min_macro_f1"]:
        reasons.append(f"macro_f1 {metrics['macro_f1']:.3f} < {th['min_macro_f1']}")
    industries = slices[(slices["slice"] == "industry") & (slices["n"] >= th["min_slice_n"])]
    passing = industries[industries["voice_accuracy"] >= th["min_voice_accuracy"]]
    if len(passing) < th["min_industries"]:
        detail = ", ".join(f"{r.value} {r.voice_accuracy:.3f} (n={r.n})" for r in industries.itertuples()) or "none measurable"
        reasons.append(f"brand-voice accuracy ≥ {th['min_voice_accuracy']} in {len(passing)} industries, "
                       f"needs {th['min_industries']} (slices of at least {th['min_slice_n']}: {detail})")
    if _bad(metrics["ece"]) or metrics["ece"] > th["max_ece"]:
        reasons.append(f"expected calibration error {metrics['ece']:.3f} > {th['max_ece']}")
    return Verdict(not reasons, reasons, {"industries_passing": passing["value"].tolist()})


def check_relative(candidate: pd.DataFrame, reference: pd.DataFrame, th: dict, reference_name: str) -> Verdict:
    """No slice (industry, channel, audience) more than ``max_slice_drop`` below the reference
    (the champion, or for the first model the baseline trained in the same run)."""
    merged = candidate.merge(reference, on=["slice", "value"], suffixes=("", "_ref"))
    merged = merged[merged["n"] >= th["min_slice_n"]]
    reasons = []
    for metric in ("macro_f1", "voice_accuracy"):
        drop = merged[f"{metric}_ref"] - merged[metric]
        for r in merged[drop > th["max_slice_drop"]].itertuples():
            reasons.append(f"{r.slice}={r.value}: {metric} {getattr(r, metric):.3f} is "
                           f"{getattr(r, metric + '_ref') - getattr(r, metric):.3f} below {reference_name}")
    return Verdict(not reasons, reasons, {"reference": reference_name, "slices_compared": int(len(merged))})


def check_behaviour(results: dict, th: dict) -> Verdict:
    """Invariance (95th percentile of the score shifts), direction (share of cases moving the
    right way), minimum functionality (pass rate per industry)."""
    reasons = []
    if results["invariance_p95_shift"] > th["invariance_tolerance"]:
        reasons.append(f"invariance: product-name or price changes moved scores by "
                       f"{results['invariance_p95_shift']:.3f} (p95) > {th['invariance_tolerance']}")
    if results["direction_pass_rate"] < th["min_direction_pass_rate"]:
        reasons.append(f"direction: an off-voice phrase lowered the voice score in "
                       f"{results['direction_pass_rate']:.1%} of cases < {th['min_direction_pass_rate']:.0%}")
    for industry, rate in sorted(results["mft_pass_rate"].items()):
        if rate < th["min_mft_pass_rate"]:
            reasons.append(f"minimum functionality in {industry}: {rate:.1%} < {th['min_mft_pass_rate']:.0%}")
    return Verdict(not reasons, reasons, {})


def check_latency(p95_ms: dict, th: dict) -> Verdict:
    """p95 per batch size within the budget (``max_p95_ms`` by batch size)."""
    reasons = [f"p95 at batch {b}: {p95_ms[int(b)]:.1f} ms > {limit} ms"
               for b, limit in sorted(th["max_p95_ms"].items()) if p95_ms[int(b)] > limit]
    return Verdict(not reasons, reasons, {})


def find_claims(texts: list[str], rules: dict) -> list[dict]:
    """Forbidden claims and blocklisted phrases in ``texts``: one finding per text and rule.

    ``rules`` is ``{"forbidden_claims": {name: [regex, …]}, "blocklist": {brand or "*": [phrase, …]}}``.
    A text may come with its brand as ``(brand, text)``; a brand's blocklist applies to it only."""
    compiled = {name: [re.compile(p, re.I) for p in patterns]
                for name, patterns in rules.get("forbidden_claims", {}).items()}
    findings = []
    for i, item in enumerate(texts):
        brand, text = item if isinstance(item, tuple) else (None, item)
        for name, patterns in compiled.items():
            hit = next((m.group(0) for p in patterns if (m := p.search(text))), None)
            if hit:
                findings.append({"index": i, "rule": f"claim:{name}", "match": hit})
        for owner, phrases in rules.get("blocklist", {}).items():
            if owner not in ("*", brand):
                continue
            for phrase in phrases:
                if re.search(rf"\b{re.escape(phrase)}\b", text, re.I):
                    findings.append({"index": i, "rule": f"blocklist:{owner}", "match": phrase})
    return findings


def check_safety(findings: list[dict], th: dict) -> Verdict:
    """At most ``max_findings`` (normally 0) forbidden claims among the texts the model would pass."""
    reasons = [f"{f['rule']}: {f['match']!r} in item {f['index']}" for f in findings[:20]]
    passed = len(findings) <= th["max_findings"]
    return Verdict(passed, [] if passed else reasons, {"findings": len(findings)})
