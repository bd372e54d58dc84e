"""A simulated annotator crowd over the synthetic ad copy, with known per-annotator quality.

Each annotator has a profile: ``careful``, ``average`` and ``careless`` annotators give the
true label with their accuracy and otherwise mostly a neighbouring class; a ``spammer``
answers at random; an ``adversary`` swaps the classes on purpose. Every annotator also labels
all gold items (the honeypots a labeling project mixes into each queue), and a small share of
rows carry the bad input real exports contain. The profiles are returned apart from the data,
so tests can check that QA finds the bad annotators and recovers the truth.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ENGAGEMENT = ["negative_engagement", "neutral", "positive_engagement"]  # ordered
VOICE = ["on_voice", "off_voice"]
ACCURACY = {"careful": 0.98, "average": 0.93, "careless": 0.82}
CROWDS = {
    "good": ["careful", "careful", "average", "average", "careless", "spammer", "adversary"],
    "bad": ["careless", "spammer", "spammer", "spammer", "adversary", "adversary", "average"],
}


@dataclass
class Crowd:
    annotations: pd.DataFrame  # item_id, annotator_id, label, brand_voice, signal_strength
    gold: pd.DataFrame          # item_id, label, brand_voice
    profiles: dict              # annotator_id -> profile


def _answer(rng, truth: int, classes: int, profile: str, ease: float = 1.0) -> int:
    """One answer; ``ease`` divides the error rate (2: half the mistakes on an easier question)."""
    if profile == "spammer":
        return int(rng.integers(classes))
    if profile == "adversary":
        return (truth + 1) % classes  # a consistent swap: always another class
    if rng.random() >= (1.0 - ACCURACY[profile]) / ease:
        return truth
    others = np.array([c for c in range(classes) if c != truth])
    weights = 1.0 / np.abs(others - truth)  # mistakes go mostly to the neighbouring class
    return int(rng.choice(others, p=weights / weights.sum()))


def _signal(rng, label: str, profile: str) -> float:
    if profile == "spammer":
        return round(float(rng.random()), 2)
    centre = 0.35 if label == "neutral" else 0.75
    if profile == "careless" and rng.random() < 0.15:
        return 0.0  # forgot to move the slider
    return round(float(np.clip(rng.normal(centre, 0.12), 0.0, 1.0)), 2)


def simulate_crowd(truth: dict, *, seed: int, crowd: str | list[str] = "good", per_item: tuple[int, int] = (3, 5),
                   gold_share: float = 0.1, problem_share: float = 0.0) -> Crowd:
    """Annotations of every item of ``truth`` (``SyntheticData.truth``) by a simulated crowd."""
    profiles_list = CROWDS[crowd] if isinstance(crowd, str) else list(crowd)
    rng = np.random.default_rng([seed, 11])
    annotators = [f"annotator-{i + 1:02d}" for i in range(len(profiles_list))]
    profiles = dict(zip(annotators, profiles_list))
    items = sorted(truth)
    n_gold = max(1, int(round(gold_share * len(items)))) if items else 0
    gold_ids = set(rng.choice(items, size=n_gold, replace=False).tolist()) if items else set()

    rows = []
    for item in items:
        t = truth[item]
        k = min(len(annotators), int(rng.integers(per_item[0], per_item[1] + 1)))
        chosen = annotators if item in gold_ids else list(rng.choice(annotators, size=k, replace=False))
        for ann in chosen:
            profile = profiles[ann]
            label = ENGAGEMENT[_answer(rng, ENGAGEMENT.index(t["engagement_label"]), 3, profile)]
            # spotting an off-voice phrase is easier than judging engagement: half the mistakes
            voice = VOICE[_answer(rng, VOICE.index(t["brand_voice"]), 2, profile, ease=2.0)]
            rows.append({"item_id": item, "annotator_id": ann, "label": label, "brand_voice": voice,
                         "signal_strength": _signal(rng, label, profile)})
    annotations = pd.DataFrame(rows, columns=["item_id", "annotator_id", "label", "brand_voice", "signal_strength"])

    n_bad = int(round(problem_share * len(annotations)))
    if n_bad:
        picks = rng.choice(len(annotations), size=n_bad, replace=False)
        extra = []
        for j, idx in enumerate(picks):
            row = annotations.iloc[int(idx)].to_dict()
            kind = j % 4
            if kind == 0:
                extra.append({**row, "item_id": f"{row['item_id']}-unknown"})     # unknown_item
            elif kind == 1:
                extra.append(dict(row))                                          # duplicate_annotation
            elif kind == 2:
                annotations.loc[int(idx), "label"] = "very_positive"              # label_outside_taxonomy
            else:
                annotations.loc[int(idx), "signal_strength"] = 1.7                # signal_out_of_range
        annotations = pd.concat([annotations, pd.DataFrame(extra, columns=annotations.columns)], ignore_index=True)

    gold = pd.DataFrame([{"item_id": i, "label": truth[i]["engagement_label"], "brand_voice": truth[i]["brand_voice"]}
                         for i in sorted(gold_ids)], columns=["item_id", "label", "brand_voice"])
    return Crowd(annotations, gold, profiles)
