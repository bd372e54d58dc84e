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
def runs(tmp_path_factory, trained, labelled_truth, tiny_params):
    from ml.training.train import train

    return [trained, train(labelled_truth, str(tmp_path_factory.mktemp("train") / "b"), tiny_params)]


def test_only_the_adapter_and_heads_train_and_the_base_is_unchanged(trained):
    report = trained
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


def test_the_adapter_on_a_fresh_base_gives_the_same_outputs(trained, labelled_truth):
    from ml.training.model import Scorer

    report = trained
    scorer = Scorer.from_adapter(report["outputs"]["adapter"])
    # the freeze: of the base, only LoRA kernels train (enable_lora alone leaves the biases trainable)
    assert all("lora_kernel" in w.path for w in scorer.backbone.trainable_weights)
    predictions = pd.read_parquet(report["outputs"]["predictions"])
    rows = pd.read_parquet(labelled_truth).set_index("copy_variant_id").loc[predictions["copy_variant_id"]].reset_index()
    scores = scorer.score_frame(rows)
    np.testing.assert_allclose(scores["brand_voice"], predictions["p_on_voice"], atol=1e-5)
    np.testing.assert_allclose(scores["engagement"][:, 2], predictions["p_positive_engagement"], atol=1e-5)
    assert os.path.getsize(report["outputs"]["adapter"]) < 0.02 * 4 * report["total_params"]  # float32 base bytes


def test_product_names_and_prices_do_not_reach_the_model(trained, labelled_truth):
    from ml.training.model import Scorer

    scorer = Scorer.from_adapter(trained["outputs"]["adapter"])
    assert "jacket" in scorer.config.mask_terms and scorer.config.mask_numbers
    context = ["Atelier Nord | fashion | social | new_visitors | Discover"] * 2
    copy = ["Timeless JACKET by Atelier Nord, 20% off. Now 129.99.", "Timeless scarf by Atelier Nord, 30% off. Now 49.99."]
    assert scorer.normalise(copy)[0] == scorer.normalise(copy)[1] == "Timeless product by Atelier Nord, 0% off. Now 0."
    scores = scorer.score(context, copy)
    assert scores["brand_voice"][0] == scores["brand_voice"][1]
