"""Label aggregation: Dawid–Skene (the default) and majority vote.

Both take annotations as three aligned integer arrays (item, annotator, class) and return,
per item, a class (``-1`` where the method gives none), a confidence and the class votes.

Dawid & Skene (1979): each annotator j has a confusion matrix θ_j[k, l] = P(answers l | true k);
EM alternates the posterior of every item's true class (E step) with the class prior and the
confusion matrices (M step), starting from the vote shares. Smoothing keeps an annotator with
few labels from getting a confusion row of exact zeros.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Aggregate:
    label: np.ndarray        # class per item, -1 where none
    confidence: np.ndarray   # posterior of the label (Dawid–Skene) or its vote share (majority)
    votes: np.ndarray        # items × classes vote counts
    confusion: np.ndarray | None = None  # annotators × classes × classes (Dawid–Skene)
    prior: np.ndarray | None = None
    iterations: int = 0


def vote_counts(item: np.ndarray, cls: np.ndarray, n_items: int, n_classes: int) -> np.ndarray:
    return np.bincount(item * n_classes + cls, minlength=n_items * n_classes).reshape(n_items, n_classes)


def majority_vote(item, annotator, cls, n_items: int, n_classes: int, min_agree: int = 2) -> Aggregate:
    """The most frequent class when at least ``min_agree`` annotators gave it and it is unique."""
    votes = vote_counts(np.asarray(item), np.asarray(cls), n_items, n_classes)
    top = votes.max(axis=1)
    label = votes.argmax(axis=1)
    unique_top = (votes == top[:, None]).sum(axis=1) == 1
    label = np.where(unique_top & (top >= min_agree), label, -1)
    total = np.maximum(votes.sum(axis=1), 1)
    return Aggregate(label=label, confidence=top / total, votes=votes)


def dawid_skene(item, annotator, cls, n_items: int, n_annotators: int, n_classes: int, *,
                max_iter: int = 100, tol: float = 1e-6, smoothing: float = 0.01) -> Aggregate:
    item, annotator, cls = (np.asarray(a, dtype=np.int64) for a in (item, annotator, cls))
    votes = vote_counts(item, cls, n_items, n_classes)
    if n_items == 0:
        return Aggregate(label=np.zeros(0, dtype=np.int64), confidence=np.zeros(0), votes=votes)
    total = votes.sum(axis=1, keepdims=True)
    post = np.where(total > 0, votes / np.maximum(total, 1), 1.0 / n_classes)
    pair = annotator * n_classes + cls  # (annotator, answer) index of every annotation
    iterations = 0
    for iterations in range(1, max_iter + 1):
        # M step: prior and confusion matrices from the current posteriors
        prior = (post.sum(axis=0) + smoothing) / (n_items + n_classes * smoothing)
        counts = np.stack([np.bincount(pair, weights=post[item, k], minlength=n_annotators * n_classes)
                           for k in range(n_classes)], axis=1)       # (annotator·answer) × true
        counts = counts.reshape(n_annotators, n_classes, n_classes).transpose(0, 2, 1) + smoothing
        confusion = counts / counts.sum(axis=2, keepdims=True)       # annotator × true × answer
        # E step: log posterior of each item's true class
        log_conf = np.log(confusion)
        contrib = log_conf[annotator, :, cls]                        # annotations × true
        log_post = np.tile(np.log(prior), (n_items, 1))
        for k in range(n_classes):
            log_post[:, k] += np.bincount(item, weights=contrib[:, k], minlength=n_items)
        log_post -= log_post.max(axis=1, keepdims=True)
        new = np.exp(log_post)
        new /= new.sum(axis=1, keepdims=True)
        change = float(np.abs(new - post).max())
        post = new
        if change < tol:
            break
    label = post.argmax(axis=1)
    label = np.where(total[:, 0] > 0, label, -1)
    return Aggregate(label=label, confidence=post.max(axis=1), votes=votes, confusion=confusion,
                     prior=prior, iterations=iterations)
