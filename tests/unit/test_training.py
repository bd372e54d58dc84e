"""LoRA training of the copy scorer on the CPU, in a tiny configuration: the base stays frozen,
the adapter is small and reproduces the model on a fresh base, and training is deterministic."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(params):
    return {**params, "training": {**params["training"], "epochs": 1, "batch_size": 16, "max_seq_len": 24}}


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, params):
    """Copy rows of the synthetic generator labelled with its hidden truth."""
    from ml.data.sources import open_source

    data = open_source("synthetic://?seed=8&n=240&problem_share=0", params).data
    rows = [json.loads(line) for line in data.read("copy.jsonl").decode().splitlines()]
    frame = pd.DataFrame(rows).assign(
        asset_id=lambda f: f["copy_variant_id"],
        engagement_label=lambda f: f["copy_variant_id"].map(lambda i: data.truth[i]["engagement_label"]),
        brand_voice=lambda f: f["copy_variant_id"].map(lambda i: data.truth[i]["brand_voice"]))
    uri = tmp_path_factory.mktemp("labelled") / "labelled.parquet"
    frame.to_parquet(uri)
    return str(uri)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, labelled, tiny):
    from ml.training.train import train

    root = tmp_path_factory.mktemp("train")
    return [train(labelled, str(root / name), tiny) for name in ("a", "b")]


def test_only_the_adapter_and_heads_train_and_the_base_is_unchanged(runs):
    report = runs[0]
    assert report["base_unchanged"] is True  # train() compares every base weight before and after
    assert 0 < report["trainable_params"] < 0.02 * report["total_params"]
    assert set(report["rows"]) == {"train", "val", "test"} and min(report["rows"].values()) > 0
    history = json.loads(open(report["outputs"]["history"]).read())
    assert len(history) == 1 and {"loss", "val_loss", "engagement_accuracy"} <= set(history[0])


def test_training_is_deterministic(runs):
    a, b = (np.load(r["outputs"]["adapter"]) for r in runs)
    assert sorted(a.files) == sorted(b.files)
    for name in a.files:
        if name != "__config__":
            np.testing.assert_array_equal(a[name], b[name])
    assert runs[0]["final"] == runs[1]["final"]


def test_the_adapter_on_a_fresh_base_gives_the_same_outputs(runs, labelled):
    from ml.training.model import Scorer, texts

    report = runs[0]
    scorer = Scorer.from_adapter(report["outputs"]["adapter"])
    predictions = pd.read_parquet(report["outputs"]["predictions"])
    rows = pd.read_parquet(labelled).set_index("copy_variant_id").loc[predictions["copy_variant_id"]].reset_index()
    scores = scorer.score(*texts(rows))
    np.testing.assert_allclose(scores["brand_voice"], predictions["p_on_voice"], atol=1e-5)
    np.testing.assert_allclose(scores["engagement"][:, 2], predictions["p_positive_engagement"], atol=1e-5)
    assert os.path.getsize(report["outputs"]["adapter"]) < 0.02 * 4 * report["total_params"]  # float32 base bytes
