"""Drift on seeded scenarios: windows drawn from the same process as the reference raise no
alarm at the default thresholds; a real shift of the copy, the context or the scores does."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.__main__ import main
from ml.data.sources import open_source
from ml.monitoring.drift import Reference, descriptors, drift


def copy_rows(params, seed: int, n: int) -> pd.DataFrame:
    data = open_source(f"synthetic://?seed={seed}&n={n}&copy_share=1&problem_share=0", params).data
    return pd.DataFrame([json.loads(line) for line in data.read("copy.jsonl").decode().splitlines()])


@pytest.fixture(scope="module")
def reference(params):
    return copy_rows(params, 100, 900)


def without_embeddings(params):
    return {**params, "monitoring": {**params["monitoring"], "drift": {**params["monitoring"]["drift"], "embeddings": False}}}


def test_descriptors_measure_what_they_say():
    d = descriptors(pd.Series(["Quiet, refined coat.", "BUY NOW!!! 50% OFF ZXQV", ""]))
    assert d["text_words"].tolist() == [3, 4, 0]
    assert d["text_exclamations"].tolist() == [0, 3, 0]
    assert d.loc[1, "text_upper_share"] == 1.0 and d.loc[0, "text_upper_share"] == pytest.approx(1 / 16)
    assert d.loc[1, "text_oov_share"] == pytest.approx(1 / 4)  # "zxqv" is not a word of the base's vocabulary
    assert d.loc[1, "text_digit_share"] > 0 and d.loc[2, "text_chars"] == 0


def test_windows_from_the_same_process_raise_no_alarm(params, reference, tmp_path):
    ref = Reference.build(reference, params)  # once, as the monitor does per champion
    ref.save(str(tmp_path / "reference"))
    assert Reference.load(str(tmp_path / "reference"), params).features.equals(ref.features)
    assert Reference.load(str(tmp_path / "reference"), without_embeddings(params)) is None  # other settings: rebuilt
    for seed in (101, 102, 103, 104, 105):
        report = drift(ref, copy_rows(params, seed, 400), str(tmp_path / str(seed)), params)
        assert not report["dataset_drift"] and not report["target_drift"], (seed, report["drifted_features"],
                                                                            report["target"])
        assert set(report["target"]) == {"ctr", "conversion_rate"}
        assert len(report["drifted_features"]) <= 2, (seed, report["drifted_features"])
    written = json.loads((tmp_path / "105" / "drift.json").read_text())
    assert written["dataset_drift"] is False and set(written["features"]) >= {"text_words", "industry", "copy_embedding"}
    assert (tmp_path / "105" / "drift.html").stat().st_size > 10_000


def test_a_real_shift_raises_drift_and_names_the_features(params, reference, tmp_path):
    current = copy_rows(params, 106, 400)
    loud = current.sample(frac=0.6, random_state=1).index
    current.loc[loud, "body"] = current.loc[loud, "body"].str.upper() + " BUY NOW!!!"
    current["industry"] = "electronics"
    report = drift(reference, current, str(tmp_path), params)
    assert report["dataset_drift"]
    assert {"text_upper_share", "text_exclamations", "industry", "copy_embedding"} <= set(report["drifted_features"])
    assert report["features"]["copy_embedding"]["kind"] == "embedding"
    assert report["features"]["industry"]["kind"] == "context"


def test_prediction_drift_is_measured_when_both_tables_have_scores(params, reference, tmp_path):
    params = without_embeddings(params)
    rng = np.random.default_rng(3)
    current = copy_rows(params, 107, 400)
    ref = reference.assign(p_on_voice=rng.beta(5, 2, len(reference)), p_positive_engagement=rng.beta(2, 3, len(reference)))
    same = drift(ref, current.assign(p_on_voice=rng.beta(5, 2, len(current)),
                                     p_positive_engagement=rng.beta(2, 3, len(current))), str(tmp_path / "a"), params)
    assert not same["prediction_drift"] and same["features"]["p_on_voice"]["kind"] == "prediction"
    moved = drift(ref, current.assign(p_on_voice=rng.beta(2, 5, len(current)),
                                      p_positive_engagement=rng.beta(2, 3, len(current))), str(tmp_path / "b"), params)
    assert moved["prediction_drift"] and "p_on_voice" in moved["drifted_features"]


def test_the_command_exits_1_on_drift_and_2_on_a_table_it_cannot_read(params, reference, tmp_path, capsys):
    reference.to_parquet(tmp_path / "ref.parquet")
    shifted = copy_rows(params, 108, 300).assign(industry="home", channel="email")
    shifted["body"] = shifted["body"].str.upper() + "!!!"
    shifted.to_csv(tmp_path / "cur.csv", index=False)
    assert main(["drift", "--reference", str(tmp_path / "ref.parquet"), "--current", str(tmp_path / "cur.csv"),
                 "--out", str(tmp_path / "out")]) == 1
    assert "DRIFT" in capsys.readouterr().out
    pd.DataFrame({"x": range(100)}).to_parquet(tmp_path / "bad.parquet")
    assert main(["drift", "--reference", str(tmp_path / "ref.parquet"), "--current", str(tmp_path / "bad.parquet"),
                 "--out", str(tmp_path / "out2")]) == 2


@pytest.mark.parametrize("reference_rows", [900, 1500])  # Evidently picks K-S/chi-square up to 1000 rows, then distances
def test_the_verdicts_are_those_of_a_plain_evidently_report(params, tmp_path, reference_rows):
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from ml.monitoring.drift import CONTEXT, DESCRIPTORS, features

    reference = copy_rows(params, 120, reference_rows)
    current = copy_rows(params, 121, 600)
    loud = current.sample(frac=0.3, random_state=2).index
    current.loc[loud, "body"] = current.loc[loud, "body"] + "!!"
    ours = drift(reference, current, str(tmp_path), without_embeddings(params))
    definition = DataDefinition(numerical_columns=DESCRIPTORS, categorical_columns=CONTEXT)
    snapshot = Report([DataDriftPreset(columns=DESCRIPTORS + CONTEXT)]).run(
        Dataset.from_pandas(features(current), data_definition=definition),
        Dataset.from_pandas(features(reference), data_definition=definition))
    theirs = {m["config"]["column"]: m["value"] for m in snapshot.dict()["metrics"]
              if m["config"].get("type", "").endswith("ValueDrift")}
    assert set(theirs) == set(ours["features"]) == set(DESCRIPTORS + CONTEXT)
    for column, value in theirs.items():
        assert ours["features"][column]["value"] == pytest.approx(value, rel=1e-9, abs=1e-12), column
    assert "text_exclamations" in ours["drifted_features"]
    assert {f["method"] for f in ours["features"].values()} == (
        {"K-S p_value", "chi-square p_value"} if reference_rows <= 1000 else {"Wasserstein distance (normed)", "Jensen-Shannon distance"})


def test_target_drift_once_outcomes_arrive(params, reference, tmp_path):
    params = without_embeddings(params)
    ref = Reference.build(reference, params)
    current = copy_rows(params, 109, 400)
    without = drift(ref, current.drop(columns=["impressions", "clicks", "conversions"]), str(tmp_path / "a"), params)
    assert without["target"] == {} and not without["target_drift"]
    feed = current[["copy_variant_id", "impressions", "clicks", "conversions"]].copy()
    feed["clicks"] = feed["clicks"] // 3  # the same copy now earns a third of the clicks
    moved = drift(ref, current.drop(columns=["impressions", "clicks", "conversions"]), str(tmp_path / "b"), params,
                  outcomes=feed)
    assert moved["target_drift"] and moved["target"]["ctr"]["drift"] and moved["target"]["ctr"]["kind"] == "target"
    assert not moved["dataset_drift"]  # the copy itself did not change
    assert moved["rows"]["outcomes"] == int((feed["impressions"] > 0).sum())
