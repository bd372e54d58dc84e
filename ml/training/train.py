"""The ``train`` stage: LoRA fine-tuning of the copy scorer on the QA-approved labelled dataset.

``train(labelled_uri, out, params)`` splits the data (by duplicate group, so near-duplicate copy
never sits on both sides), trains the adapters and heads with the hyperparameters of
``params.yaml`` → ``training``, checks that the base did not move, and writes to ``out``:
``adapter.npz`` (the adapter alone), ``split.parquet`` (which row went where),
``predictions.parquet`` (the trained model's scores of the val and test rows), ``history.json``
(per-epoch metrics) and ``train_report.json``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time

import numpy as np
import pandas as pd

from ml.common import io
from ml.common.config import InputError
from ml.training.model import ENGAGEMENT_CLASSES, Scorer, ScorerConfig, set_determinism

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


def assign_split(frame: pd.DataFrame, shares: dict, seed: int) -> pd.Series:
    """train / val / test per row from a hash of its duplicate group (or its id): stable across
    runs and machines, and near-duplicates always land together."""
    group = frame["duplicate_group"].astype("string").fillna("") if "duplicate_group" in frame else None
    key = frame["copy_variant_id"].astype(str)
    if group is not None:
        key = np.where(group != "", "group:" + group, key)
    u = np.array([int(hashlib.sha256(f"{seed}:{k}".encode()).hexdigest()[:8], 16) / 2**32 for k in key])
    cut_train, cut_val = shares["train"], shares["train"] + shares["val"]
    return pd.Series(np.where(u < cut_train, "train", np.where(u < cut_val, "val", "test")), index=frame.index)


def load_labelled(uri: str) -> pd.DataFrame:
    frame = io.read_parquet(uri)
    missing = {"copy_variant_id", "brand", "industry", "channel", "audience", "headline", "body", "cta",
               "engagement_label", "brand_voice"} - set(frame.columns)
    if missing:
        raise InputError(f"{uri} is not a labelled dataset: missing columns {sorted(missing)}")
    keep = frame["engagement_label"].isin(ENGAGEMENT_CLASSES) & frame["brand_voice"].isin(["on_voice", "off_voice"])
    return frame[keep].reset_index(drop=True)


def targets(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {"engagement": frame["engagement_label"].map(ENGAGEMENT_CLASSES.index).to_numpy(np.int32),
            "brand_voice": (frame["brand_voice"] == "on_voice").to_numpy(np.float32)[:, None]}


def train(labelled_uri: str, out: str, params: dict) -> dict:
    import keras

    cfg = params["training"]
    config = ScorerConfig.from_params(params)
    frame = load_labelled(labelled_uri)
    frame["split"] = assign_split(frame, cfg["split"], config.seed)
    counts = frame["split"].value_counts().reindex(SPLITS, fill_value=0).to_dict()
    if min(counts.values()) == 0:
        raise InputError(f"too few labelled rows to split ({counts}); need some in train, val and test")

    set_determinism(config.seed)
    scorer = Scorer(config)
    base_before = scorer.base_weights()
    scorer.model.compile(
        optimizer=keras.optimizers.Adam(float(cfg["learning_rate"])),
        loss={"engagement": keras.losses.SparseCategoricalCrossentropy(),
              "brand_voice": keras.losses.BinaryCrossentropy()},
        loss_weights={k: float(v) for k, v in cfg["loss_weights"].items()},
        metrics={"engagement": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                 "brand_voice": [keras.metrics.BinaryAccuracy(name="accuracy")]},
    )
    data = {s: frame[frame["split"] == s] for s in SPLITS}
    x = {s: scorer.features(*scorer.texts(data[s])) for s in ("train", "val")}
    started = time.monotonic()
    history = scorer.model.fit(x["train"], targets(data["train"]), validation_data=(x["val"], targets(data["val"])),
                               epochs=int(cfg["epochs"]), batch_size=int(cfg["batch_size"]), shuffle=True,
                               verbose=0, callbacks=[epoch_logger()])
    train_s = time.monotonic() - started
    moved = [p for p, w in scorer.base_weights().items() if not np.array_equal(w, base_before[p])]
    if moved:
        raise AssertionError(f"training changed {len(moved)} base weights (e.g. {moved[0]}); the base must stay frozen")

    adapter_uri = scorer.save_adapter(io.join(out, "adapter.npz"))
    io.write_parquet(io.join(out, "split.parquet"), frame[["copy_variant_id", "split"]])
    held_out = frame[frame["split"] != "train"]
    scores = scorer.score_frame(held_out)
    predictions = held_out[["copy_variant_id", "split"]].assign(
        **{f"p_{c}": scores["engagement"][:, i] for i, c in enumerate(ENGAGEMENT_CLASSES)}, p_on_voice=scores["brand_voice"])
    io.write_parquet(io.join(out, "predictions.parquet"), predictions)
    per_epoch = [{k: float(v[i]) for k, v in history.history.items()} for i in range(len(history.epoch))]
    io.write_text(io.join(out, "history.json"), json.dumps(per_epoch, indent=2) + "\n")
    trainable = int(sum(np.prod(w.shape) for w in scorer.model.trainable_weights))
    report = {
        "stage": "train",
        "labelled": labelled_uri,
        "rows": counts,
        "config": config.__dict__,
        "hyperparameters": {k: cfg[k] for k in ("learning_rate", "epochs", "batch_size", "delexicalise")},
        "trainable_params": trainable,
        "total_params": int(scorer.model.count_params()),
        "base_unchanged": True,
        "train_seconds": round(train_s, 2),
        "examples_per_second": round(counts["train"] * int(cfg["epochs"]) / train_s, 2),
        "final": per_epoch[-1],
        "outputs": {"adapter": adapter_uri, "split": io.join(out, "split.parquet"),
                    "predictions": io.join(out, "predictions.parquet"),
                    "history": io.join(out, "history.json"), "report": io.join(out, "train_report.json")},
    }
    io.write_text(io.join(out, "train_report.json"), json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def epoch_logger():
    """A Keras callback writing one progress line per epoch to the log (so to Airflow's task log)."""
    import keras

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted((logs or {}).items()) if "loss" in k or "acc" in k)
            log.info("train: epoch %d/%d: %s", epoch + 1, self.params.get("epochs", 0), shown)

    return EpochLog()
