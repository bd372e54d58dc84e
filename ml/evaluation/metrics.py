"""Evaluation metrics of the copy scorer: plain NumPy over labels and probabilities."""
from __future__ import annotations

import numpy as np
import pandas as pd


def macro_f1(y_true, y_pred, n_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in truth or prediction."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    scores = []
    for c in range(n_classes):
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else float("nan")


def expected_calibration_error(probs, y_true, bins: int = 10) -> float:
    """Top-label ECE: Σ_b |B_b|/n · |accuracy(B_b) - confidence(B_b)| over equal-width bins."""
    probs, y_true = np.asarray(probs, dtype=float), np.asarray(y_true)
    if probs.ndim == 1:  # a binary probability of the positive class
        probs = np.stack([1 - probs, probs], axis=1)
    if len(y_true) == 0:
        return float("nan")
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    correct = predicted == y_true
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def slice_table(frame: pd.DataFrame, by: list[str], n_classes: int) -> pd.DataFrame:
    """Per slice of each column in ``by``: n, engagement macro-F1 and brand-voice accuracy.

    ``frame`` holds ``engagement_true, engagement_pred, voice_true, voice_pred`` per row."""
    rows = []
    for column in by:
        for value, part in frame.groupby(column, sort=True):
            rows.append({"slice": column, "value": value, "n": int(len(part)),
                         "macro_f1": macro_f1(part["engagement_true"], part["engagement_pred"], n_classes),
                         "voice_accuracy": float((part["voice_true"] == part["voice_pred"]).mean())})
    return pd.DataFrame(rows, columns=["slice", "value", "n", "macro_f1", "voice_accuracy"])
