"""The automated dataset checks of labeling QA: near-duplicate copy and duplicate images."""
from __future__ import annotations

from ml.data.synthetic import render_product_image, resized_copy
from ml.labeling.checks import duplicate_images, duplicate_texts, normalise, phash

BASE = "Crafted jacket by Atelier Nord. Meet the timeless jacket: tailored by design and quiet every day."


def test_exact_and_near_duplicate_copy_are_grouped_and_distinct_copy_is_not():
    texts = {
        "a": BASE,
        "b": "CRAFTED JACKET by Atelier Nord!!  Meet the timeless jacket - tailored by design and quiet every day",
        "c": BASE.replace("quiet every day", "quiet every single day") + " Now 199.99.",
        "d": "Bold sneakers by Street Pulse, 20% off. Meet the fresh sneakers: loud by design and hyped every day.",
        "e": "Cozy blanket by Maison Verte. Meet the natural blanket: handmade by design and warm every day.",
    }
    assert normalise(texts["a"]) == normalise(texts["b"])
    groups = duplicate_texts(list(texts), list(texts.values()))
    assert len(groups) == 1
    assert set(groups[0]["ids"]) == {"a", "b", "c"} and groups[0]["kind"] == "near"
    assert groups[0]["similarity"] >= 0.8
    exact = duplicate_texts(["a", "b", "d"], [texts["a"], texts["b"], texts["d"]])
    assert exact == [{"ids": ["a", "b"], "kind": "exact", "similarity": 1.0}]


def test_a_resized_reencoded_image_is_a_duplicate_and_other_shots_are_not():
    shots = {f"img{i}": render_product_image(3, i, "Voltix", "laptop", 128, "png") for i in range(12)}
    shots["copy-of-img4"] = resized_copy(shots["img4"], scale=0.6, quality=60)
    ids = list(shots)
    hashes = [phash(shots[i]) for i in ids]
    groups = duplicate_images(ids, hashes, max_distance=3)
    assert [g["ids"] for g in groups] == [["img4", "copy-of-img4"]] and groups[0]["max_distance"] <= 3
