"""Drift of ad copy and of the scorer's answers between a reference and a current table.

``drift(reference, current, out, params)`` accepts two tables in the ad-copy schema
(``headline``, ``body`` …) or in the prediction log's (``text`` …), in any mix, and measures
with Evidently 0.7's default drift test per column (the one ``DataDriftPreset`` picks for the
column's type and the table sizes):
- text descriptors of the copy: characters, words, the share of words outside the base model's
  vocabulary, punctuation, upper case and digit shares, exclamation marks;
- the categorical context: industry, channel, audience;
- the predictions where both tables have them: the on-voice and positive-engagement scores;
- target drift once outcomes arrive: click-through and conversion rates against the reference's;
- embedding drift of the copy in the pretrained base's sentence-embedding space (a domain
  classifier, Evidently's default), on at most ``monitoring.drift.embedding_sample`` rows of
  each table (a seeded sample), when ``monitoring.drift.embeddings`` is on.

The reference may be given as a ``Reference``: its features and sample embeddings computed
once (per champion, by the monitor) and reused by every window. The verdicts use every row of
both tables. Writes ``drift.json`` (top-level ``dataset_drift``, per-feature method, value,
threshold and verdict) and ``drift.html`` (Evidently's report, for stewards: its charts draw on
at most ``monitoring.drift.report_rows`` current rows, a seeded sample, and say so); returns
the JSON.
"""
from __future__ import annotations

import io as bytes_io
import json
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from ml.common import io
from ml.common.config import InputError

CONTEXT = ["industry", "channel", "audience"]
PREDICTIONS = ["p_on_voice", "p_positive_engagement"]
OUTCOMES = ["ctr", "conversion_rate"]  # clicks per impression, conversions per click
DESCRIPTORS = ["text_chars", "text_words", "text_oov_share", "text_punctuation_share", "text_upper_share",
               "text_digit_share", "text_exclamations"]
FEATURES_VERSION = 2  # of the feature definitions: a cached reference of another version is rebuilt
CHUNK = 100_000       # rows whose descriptors are computed at once (bounds the memory of large windows)
WORD = re.compile(r"[A-Za-z']+")
CLASSES = {"letter": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "upper": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
           "digit": "0123456789", "exclamation": "!"}
BYTE_CLASSES = np.zeros(256, np.uint8)  # bit i set: the byte is in the i-th class
for _bit, _chars in enumerate(CLASSES.values()):
    BYTE_CLASSES[list(_chars.encode())] |= 1 << _bit


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


def _ascii_counts(text: pd.Series) -> dict[str, np.ndarray]:
    """Per text, how many of its bytes fall in each of ``CLASSES``: one pass over the UTF-8 bytes
    of all texts (a byte of a multi-byte character is never ASCII, so never counted)."""
    encoded = [t.encode() for t in text]
    lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
    codes = BYTE_CLASSES[np.frombuffer(b"".join(encoded), np.uint8)]
    nonempty = lengths > 0
    starts = (np.cumsum(lengths) - lengths)[nonempty]
    counts = {}
    for bit, name in enumerate(CLASSES):
        counts[name] = np.zeros(len(lengths))
        if len(starts):
            counts[name][nonempty] = np.add.reduceat((codes >> bit) & 1, starts, dtype=np.int64)
    return counts


def _descriptors(text: pd.Series) -> pd.DataFrame:
    vocab = vocabulary()
    chars = text.str.len().astype(float).to_numpy()
    counts = _ascii_counts(text)
    words = [WORD.findall(t.lower()) for t in text]
    n_words = np.array([len(ws) for ws in words], float)
    oov = np.array([sum(w.strip("'") not in vocab for w in ws) for ws in words], float)
    punctuation = text.str.count(r"[^\w\s]").astype(float).to_numpy()
    return pd.DataFrame({
        "text_chars": chars, "text_words": n_words,
        "text_oov_share": oov / np.maximum(n_words, 1.0),
        "text_punctuation_share": punctuation / np.maximum(chars, 1.0),
        "text_upper_share": counts["upper"] / np.maximum(counts["letter"], 1.0),
        "text_digit_share": counts["digit"] / np.maximum(chars, 1.0),
        "text_exclamations": counts["exclamation"],
    }, index=text.index)


def descriptors(text: pd.Series) -> pd.DataFrame:
    """Numerical descriptors of each text, ``CHUNK`` texts at a time."""
    if len(text) <= CHUNK:
        return _descriptors(text)
    return pd.concat([_descriptors(text.iloc[lo:lo + CHUNK]) for lo in range(0, len(text), CHUNK)])


def outcome_rates(frame: pd.DataFrame) -> pd.DataFrame:
    """Click-through and conversion rates of the rows that carry outcomes (``impressions``,
    ``clicks``, ``conversions``); undefined rates (no impressions, no clicks) are left out."""
    if not {"impressions", "clicks"} <= set(frame.columns):
        return pd.DataFrame(columns=OUTCOMES, dtype=float)
    impressions, clicks = (pd.to_numeric(frame[c], errors="coerce").to_numpy(float) for c in ("impressions", "clicks"))
    conversions = pd.to_numeric(frame["conversions"], errors="coerce").to_numpy(float) \
        if "conversions" in frame.columns else np.full(len(frame), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.DataFrame({"ctr": np.where(impressions > 0, clicks / impressions, np.nan),
                             "conversion_rate": np.where(clicks > 0, conversions / clicks, np.nan)})


def features(frame: pd.DataFrame) -> pd.DataFrame:
    """The drift features of each row: descriptors of the copy, the context, and the scores and
    outcome rates where the table has them."""
    missing = [c for c in CONTEXT if c not in frame.columns]
    if missing:
        raise InputError(f"a drift table needs the context columns {CONTEXT}; missing {missing}")
    out = descriptors(copy_text(frame)).assign(**{c: frame[c].astype(str).to_numpy() for c in CONTEXT})
    if all(c in frame.columns for c in PREDICTIONS):
        out = out.assign(**{c: frame[c].astype(float).to_numpy() for c in PREDICTIONS})
    rates = outcome_rates(frame)
    if len(rates):
        out = out.assign(**{c: rates[c].to_numpy() for c in OUTCOMES})
    return out.reset_index(drop=True)


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return frame.sample(n=n, random_state=seed) if len(frame) > n else frame


def sample_embeddings(frame: pd.DataFrame, params: dict) -> np.ndarray:
    """The base model's sentence embeddings of a seeded sample of the table's copy."""
    from ml.monitoring.embeddings import embed

    sample = _sample(frame, int(params["monitoring"]["drift"]["embedding_sample"]), int(params["base"]["seed"]))
    return embed(copy_text(sample).tolist(), params["training"]["base"])


@dataclass
class Reference:
    """What a drift check needs of the reference table, computed once and reused by every
    window: its features, and the embeddings of its seeded sample (when embeddings are on)."""
    features: pd.DataFrame
    embeddings: np.ndarray | None
    meta: dict

    @staticmethod
    def settings(params: dict) -> dict:
        cfg = params["monitoring"]["drift"]
        return {"features_version": FEATURES_VERSION, "base": str(params["training"]["base"]),
                "embedding_sample": int(cfg["embedding_sample"]) if cfg.get("embeddings") else None,
                "seed": int(params["base"]["seed"])}

    @classmethod
    def build(cls, frame: pd.DataFrame, params: dict) -> Reference:
        settings = cls.settings(params)
        embeddings = sample_embeddings(frame, params) if settings["embedding_sample"] else None
        return cls(features(frame), embeddings, {**settings, "rows": int(len(frame))})

    def save(self, uri: str) -> None:
        io.write_parquet(io.join(uri, "features.parquet"), self.features)
        if self.embeddings is not None:
            buffer = bytes_io.BytesIO()
            np.save(buffer, self.embeddings)
            io.write_bytes(io.join(uri, "embeddings.npy"), buffer.getvalue())
        io.write_text(io.join(uri, "reference.json"), json.dumps(self.meta, indent=2) + "\n")  # last: marks it complete

    @classmethod
    def load(cls, uri: str, params: dict) -> Reference | None:
        """The reference saved at ``uri``, or None when there is none or it was built with other
        settings (feature definitions, base model, embedding sample)."""
        if not io.exists(io.join(uri, "reference.json")):
            return None
        meta = json.loads(io.read_text(io.join(uri, "reference.json")))
        if {k: meta.get(k) for k in cls.settings(params)} != cls.settings(params):
            return None
        embeddings = (np.load(bytes_io.BytesIO(io.read_bytes(io.join(uri, "embeddings.npy"))))
                      if meta["embedding_sample"] else None)
        return cls(io.read_parquet(io.join(uri, "features.parquet")), embeddings, meta)


def column_drift(reference: pd.Series, current: pd.Series, categorical: bool, method: str | None = None,
                 threshold: float | None = None) -> dict:
    """Evidently's drift test ``method`` (by default the one ``ValueDrift`` picks: by type, by the
    reference's size and by the number of distinct values) at ``threshold`` (by default the
    test's own), on all rows of both."""
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Categorical if categorical else ColumnType.Numerical
    reference, current = (s.replace([np.inf, -np.inf], np.nan).dropna() for s in (reference, current))
    if reference.empty or current.empty:
        raise InputError(f"column {reference.name} has no values in the {'reference' if reference.empty else 'current'} table")
    test = get_stattest(reference, current, kind, method)
    result = test(reference, current, kind, threshold)
    return {"method": test.display_name, "value": float(result.drift_score),
            "threshold": float(result.actual_threshold), "drift": bool(result.drifted)}


def drift(reference: pd.DataFrame | Reference, current: pd.DataFrame, out: str, params: dict,
          outcomes: pd.DataFrame | None = None) -> dict:
    """Drift of ``current`` against ``reference``. Target drift: the click-through and conversion
    rates of ``outcomes`` (the window's outcome feed; by default ``current``'s own outcome
    columns) against the reference's, when both have them; it is reported as ``target_drift``
    and kept out of the dataset drift share, which is about the inputs and the scores."""
    cfg = params["monitoring"]["drift"]
    rows = reference.meta["rows"] if isinstance(reference, Reference) else len(reference)
    if rows < cfg["min_rows"] or len(current) < cfg["min_rows"]:
        raise InputError(f"too few rows to judge drift: reference {rows}, current {len(current)} "
                         f"(monitoring.drift.min_rows = {cfg['min_rows']})")
    if not isinstance(reference, Reference):
        reference = Reference.build(reference, params)
    ref, cur = reference.features, features(current)
    numerical = DESCRIPTORS + [c for c in PREDICTIONS if c in ref.columns and c in cur.columns]
    kinds = {**dict.fromkeys(DESCRIPTORS, "text"), **dict.fromkeys(PREDICTIONS, "prediction"),
             **dict.fromkeys(CONTEXT, "context")}
    per_feature = {c: {**column_drift(ref[c], cur[c], kinds[c] == "context"), "kind": kinds[c]}
                   for c in numerical + CONTEXT}
    if reference.embeddings is not None:
        per_feature["copy_embedding"] = embedding_drift(reference.embeddings, sample_embeddings(current, params), params)
    drifted = sorted(c for c, f in per_feature.items() if f["drift"])
    share = len(drifted) / len(per_feature)
    rates = outcome_rates(current if outcomes is None else outcomes)
    target = {}
    for c in OUTCOMES:
        if c in ref.columns and ref[c].notna().sum() >= cfg["min_rows"] and rates[c].notna().sum() >= cfg["min_rows"]:
            target[c] = {**column_drift(ref[c], rates[c], False, cfg["target"]["method"], cfg["target"]["threshold"]),
                         "kind": "target"}
    report = {"stage": "drift", "dataset_drift": share >= cfg["drift_share"], "drifted_share": share,
              "drift_share_threshold": cfg["drift_share"], "drifted_features": drifted,
              "prediction_drift": any(per_feature[c]["drift"] for c in PREDICTIONS if c in per_feature),
              "target_drift": any(t["drift"] for t in target.values()),
              "target": target,  # empty: no outcomes (impressions, clicks, conversions) for the window
              "rows": {"reference": int(len(ref)), "current": int(len(cur)), "outcomes": int(rates["ctr"].notna().sum())},
              "features": per_feature,
              "reference_means": ref[numerical].mean().round(6).to_dict(),
              "current_means": cur[numerical].mean().round(6).to_dict(),
              "outputs": {"json": io.join(out, "drift.json"), "html": io.join(out, "drift.html")}}
    report["report_rows"] = write_html(ref[numerical + CONTEXT], cur[numerical + CONTEXT], numerical, report, params)
    io.write_text(report["outputs"]["json"], json.dumps(report, indent=2, sort_keys=True, default=float) + "\n")
    return report


def write_html(ref: pd.DataFrame, cur: pd.DataFrame, numerical: list[str], report: dict, params: dict) -> int:
    """Evidently's ``DataDriftPreset`` report for stewards, its charts drawn from at most
    ``monitoring.drift.report_rows`` current rows (a seeded sample); a sampled report says so
    above the charts and repeats the verdicts of record. Returns the current rows it used."""
    import html
    import tempfile

    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cfg = params["monitoring"]["drift"]
    shown = _sample(cur, int(cfg["report_rows"]), int(params["base"]["seed"]))
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=CONTEXT)
    snapshot = Report([DataDriftPreset(columns=numerical + CONTEXT, drift_share=cfg["drift_share"])]).run(
        Dataset.from_pandas(shown, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition))
    with tempfile.TemporaryDirectory() as tmp:  # Evidently writes to a path; io writes it atomically, or to S3
        snapshot.save_html(f"{tmp}/drift.html")
        page = open(f"{tmp}/drift.html", encoding="utf-8").read()
    if len(shown) < len(cur):
        banner = (f"<div style='padding:12px;background:#fff3cd;font-family:sans-serif'>The charts below draw on a "
                  f"seeded sample of {len(shown):,} of the window's {len(cur):,} rows "
                  f"(monitoring.drift.report_rows). The verdicts of record use all rows (drift.json): dataset drift "
                  f"<b>{report['dataset_drift']}</b>, drifted: {html.escape(', '.join(report['drifted_features']) or 'none')}."
                  "</div>")
        page = page.replace("<body>", "<body>" + banner, 1)
    io.write_text(report["outputs"]["html"], page)
    return int(len(shown))


def embedding_drift(reference: np.ndarray, current: np.ndarray, params: dict) -> dict:
    """Evidently's ``EmbeddingsDrift`` (domain classifier: drift when a classifier tells the two
    tables apart, ROC AUC above its threshold) on the base model's sentence embeddings."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift

    columns = [f"e{i}" for i in range(reference.shape[1])]
    definition = DataDefinition(embeddings={"copy": columns})
    snapshot = Report([EmbeddingsDrift(embeddings_name="copy")]).run(
        Dataset.from_pandas(pd.DataFrame(current, columns=columns), data_definition=definition),
        Dataset.from_pandas(pd.DataFrame(reference, columns=columns), data_definition=definition))
    value = float(snapshot.dict()["metrics"][0]["value"])
    threshold = float(params["monitoring"]["drift"]["embedding_max_auc"])
    return {"method": "domain classifier ROC AUC", "value": value, "threshold": threshold, "drift": value > threshold,
            "kind": "embedding", "rows": {"reference": len(reference), "current": len(current)}}
