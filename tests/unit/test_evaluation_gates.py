"""Evaluation gates and metrics: pure functions, each with passing and failing inputs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import f1_score

from ml.common.config import contracts_dir
from ml.evaluation.gates import (
    check_absolute, check_behaviour, check_latency, check_relative, check_safety, find_claims,
)
from ml.evaluation.metrics import expected_calibration_error, macro_f1, slice_table

TH = {"min_macro_f1": 0.6, "min_voice_accuracy": 0.95, "min_industries": 3, "min_slice_n": 10, "max_ece": 0.1,
      "max_slice_drop": 0.05, "invariance_tolerance": 0.05, "min_direction_pass_rate": 0.9,
      "min_mft_pass_rate": 0.9, "max_p95_ms": {1: 50, 4: 80}, "max_findings": 0}


def test_macro_f1_equals_scikit_learn():
    rng = np.random.default_rng(0)
    for _ in range(50):
        t, p = rng.integers(0, 3, 80), rng.integers(0, 3, 80)
        assert macro_f1(t, p, 3) == pytest.approx(f1_score(t, p, average="macro", labels=sorted(set(t) | set(p))))


def test_ece_is_zero_when_calibrated_and_large_when_overconfident():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.5, 1.0, 20000)
    correct = rng.random(20000) < conf
    probs = np.stack([conf, 1 - conf], axis=1)
    y = np.where(correct, 0, 1)
    assert expected_calibration_error(probs, y) < 0.02
    assert expected_calibration_error(np.tile([0.99, 0.01], (1000, 1)), np.r_[np.zeros(500), np.ones(500)]) > 0.45


def slices(voice_by_industry: dict, n=20, f1=0.8) -> pd.DataFrame:
    return pd.DataFrame([{"slice": "industry", "value": k, "n": n, "macro_f1": f1, "voice_accuracy": v}
                         for k, v in voice_by_industry.items()])


def test_absolute_gate():
    good = slices({"fashion": 0.97, "home": 0.96, "electronics": 0.99})
    assert check_absolute({"macro_f1": 0.7, "ece": 0.05}, good, TH).passed
    v = check_absolute({"macro_f1": 0.5, "ece": 0.2}, slices({"fashion": 0.97, "home": 0.9, "electronics": 0.99}), TH)
    assert not v.passed and len(v.reasons) == 3
    assert "home 0.900" in v.reasons[1]
    tiny = slices({"fashion": 1.0, "home": 1.0, "electronics": 1.0}, n=3)  # too small to count
    assert not check_absolute({"macro_f1": 0.7, "ece": 0.05}, tiny, TH).passed
    assert not check_absolute({"macro_f1": float("nan"), "ece": 0.05}, good, TH).passed


def test_relative_gate_names_the_slice_that_fell():
    ref = pd.concat([slices({"fashion": 0.97, "home": 0.96}),
                     pd.DataFrame([{"slice": "channel", "value": "email", "n": 30, "macro_f1": 0.8, "voice_accuracy": 0.9}])])
    same = ref.copy()
    assert check_relative(same, ref, TH, "champion v3").passed
    worse = ref.copy()
    worse.loc[worse["value"] == "email", "macro_f1"] = 0.7
    v = check_relative(worse, ref, TH, "champion v3")
    assert not v.passed and v.reasons == ["channel=email: macro_f1 0.700 is 0.100 below champion v3"]


def test_behaviour_latency_and_safety_gates():
    ok = {"invariance_p95_shift": 0.01, "direction_pass_rate": 0.95, "mft_pass_rate": {"fashion": 1.0, "home": 0.95}}
    assert check_behaviour(ok, TH).passed
    bad = {**ok, "invariance_p95_shift": 0.2, "mft_pass_rate": {"fashion": 0.5, "home": 0.95}}
    assert [r.split(":")[0] for r in check_behaviour(bad, TH).reasons] == ["invariance", "minimum functionality in fashion"]
    assert check_latency({1: 20.0, 4: 60.0}, TH).passed
    assert check_latency({1: 60.0, 4: 60.0}, TH).reasons == ["p95 at batch 1: 60.0 ms > 50 ms"]

    rules = yaml.safe_load((contracts_dir() / "claims.yaml").read_text())
    texts = ["Tailored jacket, crafted to last.", "Guaranteed results in 7 days!", "Cures back pain, clinically proven",
             ("Voltix", "Faster than Apple"), ("Atelier Nord", "The cheapest coat"), ("Street Pulse", "The cheapest drop")]
    findings = find_claims(texts, rules)
    assert {(f["index"], f["rule"]) for f in findings} == {
        (1, "claim:guaranteed_results"), (2, "claim:medical"), (3, "blocklist:*"), (4, "blocklist:Atelier Nord")}
    assert not check_safety(findings, TH).passed and check_safety([], TH).passed


def test_slice_table_measures_each_slice():
    frame = pd.DataFrame({"industry": ["home"] * 4 + ["fashion"] * 2, "channel": ["email"] * 6,
                          "engagement_true": [0, 1, 2, 2, 0, 1], "engagement_pred": [0, 1, 2, 1, 0, 1],
                          "voice_true": [1, 1, 0, 1, 1, 0], "voice_pred": [1, 1, 0, 0, 1, 0]})
    table = slice_table(frame, ["industry", "channel"], 3).set_index(["slice", "value"])
    assert table.loc[("industry", "fashion"), "voice_accuracy"] == 1.0
    assert table.loc[("industry", "home"), "voice_accuracy"] == 0.75
    assert table.loc[("channel", "email"), "n"] == 6
    assert table.loc[("industry", "fashion"), "macro_f1"] == 1.0
