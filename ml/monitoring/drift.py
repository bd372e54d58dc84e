"""Drift of ad copy and of the scorer's answers between a reference and a current table.

``drift(reference, current, out, params)`` accepts two tables in the ad-copy schema
(``headline``, ``body`` …) or in the prediction log's (``text`` …), in any mix, and measures
with Evidently 0.7 (``DataDriftPreset``, its default test per column and size):
- text descriptors of the copy: characters, words, the share of words outside the base model's
  vocabulary, punctuation, upper case and digit shares, exclamation marks;
- the categorical context: industry, channel, audience;
- the predictions where both tables have them: the on-voice and positive-engagement scores;
- embedding drift of the copy in the pretrained base's sentence-embedding space (a domain
  classifier, Evidently's default), on at most ``monitoring.drift.embedding_sample`` rows of
  each table (a seeded sample), when ``monitoring.drift.embeddings`` is on.
Writes ``drift.json`` (top-level ``dataset_drift``, per-feature method, value, threshold and
verdict) and ``drift.html`` (Evidently's report, for stewards); returns the JSON.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache

import pandas as pd

from ml.common import io
from ml.common.config import InputError

CONTEXT = ["industry", "channel", "audience"]
PREDICTIONS = ["p_on_voice", "p_positive_engagement"]
DESCRIPTORS = ["text_chars", "text_words", "text_oov_share", "text_punctuation_share", "text_upper_share",
               "text_digit_share", "text_exclamations"]
WORD = re.compile(r"[A-Za-z']+")


@lru_cache(maxsize=1)
def vocabulary() -> frozenset:
    """The whole words of the base model's WordPiece vocabulary (lower case)."""
    from pathlib import Path

    from ml.common.config import load_params
    from ml.training.model import base_path

    lines = (Path(base_path(load_params()["training"]["base"])) / "vocab.txt").read_text().splitlines()
    return frozenset(w for w in lines if w.isalpha())


def copy_text(frame: pd.DataFrame) -> pd.Series:
    if "text" in frame.columns:
        return frame["text"].fillna("").astype(str)
    if {"headline", "body"} <= set(frame.columns):
        return (frame["headline"].fillna("") + " " + frame["body"].fillna("")).str.strip()
    raise InputError(f"a drift table needs a text column, or headline and body (it has {sorted(frame.columns)[:12]})")


def descriptors(text: pd.Series) -> pd.DataFrame:
    """Numerical descriptors of each text (vectorised string operations)."""
    vocab = vocabulary()
    chars = text.str.len().astype(float)
    letters = text.str.count(r"[A-Za-z]").astype(float)
    words = text.map(lambda t: WORD.findall(t.lower()))
    n_words = words.map(len).astype(float)
    oov = words.map(lambda ws: sum(w.strip("'") not in vocab for w in ws)).astype(float)
    safe = chars.where(chars > 0, 1.0)
    return pd.DataFrame({
        "text_chars": chars, "text_words": n_words,
        "text_oov_share": oov / n_words.where(n_words > 0, 1.0),
        "text_punctuation_share": text.str.count(r"[^\w\s]").astype(float) / safe,
        "text_upper_share": text.str.count(r"[A-Z]").astype(float) / letters.where(letters > 0, 1.0),
        "text_digit_share": text.str.count(r"\d").astype(float) / safe,
        "text_exclamations": text.str.count("!").astype(float),
    }, index=text.index)


def features(frame: pd.DataFrame, with_predictions: bool) -> pd.DataFrame:
    missing = [c for c in CONTEXT if c not in frame.columns]
    if missing:
        raise InputError(f"a drift table needs the context columns {CONTEXT}; missing {missing}")
    out = descriptors(copy_text(frame)).assign(**{c: frame[c].astype(str) for c in CONTEXT})
    if with_predictions:
        out = out.assign(**{c: frame[c].astype(float) for c in PREDICTIONS})
    return out.reset_index(drop=True)


def _verdict(method: str, value: float, threshold: float) -> bool:
    """Evidently's convention: a test (p-value) drifts below its threshold, a distance above it."""
    return value < threshold if "p_value" in method.lower() or "test" in method.lower() else value >= threshold


def drift(reference: pd.DataFrame, current: pd.DataFrame, out: str, params: dict) -> dict:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cfg = params["monitoring"]["drift"]
    if len(reference) < cfg["min_rows"] or len(current) < cfg["min_rows"]:
        raise InputError(f"too few rows to judge drift: reference {len(reference)}, current {len(current)} "
                         f"(monitoring.drift.min_rows = {cfg['min_rows']})")
    with_predictions = all(c in reference.columns and c in current.columns for c in PREDICTIONS)
    ref, cur = features(reference, with_predictions), features(current, with_predictions)
    numerical = DESCRIPTORS + (PREDICTIONS if with_predictions else [])
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=CONTEXT)
    snapshot = Report([DataDriftPreset(columns=numerical + CONTEXT, drift_share=cfg["drift_share"])]).run(
        Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition))

    per_feature = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            value = float(metric["value"])
            per_feature[config["column"]] = {
                "method": config["method"], "value": value, "threshold": float(config["threshold"]),
                "drift": _verdict(config["method"], value, float(config["threshold"])),
                "kind": "prediction" if config["column"] in PREDICTIONS
                else "context" if config["column"] in CONTEXT else "text"}
    if cfg.get("embeddings"):
        per_feature["copy_embedding"] = embedding_drift(reference, current, params)
    drifted = sorted(c for c, f in per_feature.items() if f["drift"])
    share = len(drifted) / len(per_feature) if per_feature else 0.0
    report = {"stage": "drift", "dataset_drift": share >= cfg["drift_share"], "drifted_share": share,
              "drift_share_threshold": cfg["drift_share"], "drifted_features": drifted,
              "prediction_drift": any(per_feature[c]["drift"] for c in PREDICTIONS if c in per_feature),
              "rows": {"reference": int(len(reference)), "current": int(len(current))},
              "features": per_feature,
              "reference_means": ref[numerical].mean().round(6).to_dict(),
              "current_means": cur[numerical].mean().round(6).to_dict(),
              "outputs": {"json": io.join(out, "drift.json"), "html": io.join(out, "drift.html")}}
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:  # Evidently writes to a path; io writes it atomically, or to S3
        snapshot.save_html(f"{tmp}/drift.html")
        io.write_bytes(report["outputs"]["html"], open(f"{tmp}/drift.html", "rb").read())
    io.write_text(report["outputs"]["json"], json.dumps(report, indent=2, sort_keys=True, default=float) + "\n")
    return report


def embedding_drift(reference: pd.DataFrame, current: pd.DataFrame, params: dict) -> dict:
    """Evidently's ``EmbeddingsDrift`` (domain classifier: drift when a classifier tells the two
    tables apart, ROC AUC above its threshold) on the base model's sentence embeddings."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift

    from ml.monitoring.embeddings import embed

    cfg, seed = params["monitoring"]["drift"], int(params["base"]["seed"])
    n = int(cfg["embedding_sample"])
    tables = []
    for frame in (reference, current):
        sample = frame.sample(n=min(n, len(frame)), random_state=seed) if len(frame) > n else frame
        vectors = embed(copy_text(sample).tolist(), params["training"]["base"])
        tables.append(pd.DataFrame(vectors, columns=[f"e{i}" for i in range(vectors.shape[1])]))
    definition = DataDefinition(embeddings={"copy": list(tables[0].columns)})
    snapshot = Report([EmbeddingsDrift(embeddings_name="copy")]).run(
        Dataset.from_pandas(tables[1], data_definition=definition), Dataset.from_pandas(tables[0], data_definition=definition))
    value = float(snapshot.dict()["metrics"][0]["value"])
    threshold = float(cfg["embedding_max_auc"])
    return {"method": "domain classifier ROC AUC", "value": value, "threshold": threshold, "drift": value > threshold,
            "kind": "embedding", "rows": {"reference": len(tables[0]), "current": len(tables[1])}}
