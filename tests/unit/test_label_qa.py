"""Labeling QA on the simulated crowd (known annotator quality, known truth) and on bad input."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.__main__ import main
from ml.data.crowd import simulate_crowd
from ml.data.publish import publish_labelled
from ml.data.sources import open_source
from ml.labeling.aggregate import dawid_skene, majority_vote
from ml.labeling.annotations import label_studio_export
from ml.labeling.qa import label_qa

SEED, N = 42, 400
SYNTH = f"synthetic://?seed={SEED}&n={N}&copy_share=0.5"  # fixed here, whatever the demo size


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, params):
    """The licence-approved dataset of the synthetic source (small images: labels are about copy)."""
    from ml.data.acquire import acquire
    from ml.licensing.gate import licence_check

    root = tmp_path_factory.mktemp("dataset")
    acquire([f"{SYNTH}&image_size=32"], str(root / "acquired"), logical_date="2026-12-01", params=params)
    licence_check(str(root / "acquired" / "manifest.parquet"), str(root / "approved"), logical_date="2026-12-01",
                  run_id="t", ledger_uri=str(root / "ledger"), params=params)
    return str(root / "approved")


@pytest.fixture(scope="module")
def truth(dataset, params):
    approved = set(pd.read_parquet(f"{dataset}/approved_copy.parquet")["copy_variant_id"])
    return {k: v for k, v in open_source(SYNTH, params).data.truth.items() if k in approved}


def run(tmp_path, params, annotations=SYNTH, gold=SYNTH, name="qa", **kw):
    out = tmp_path / name
    report = label_qa(annotations, gold, str(out), logical_date="2026-12-01", run_id=kw.pop("run_id", "test"),
                      audit_uri=str(tmp_path / "audit"), params=params, **kw)
    return report, out


def write_crowd(tmp_path, crowd, name="annotations.csv"):
    crowd.annotations.to_csv(tmp_path / name, index=False)
    crowd.gold.to_csv(tmp_path / "gold.csv", index=False)
    return str(tmp_path / name), str(tmp_path / "gold.csv")


def audit(tmp_path) -> list[dict]:
    return [json.loads(line) for p in sorted((tmp_path / "audit").glob("*.jsonl")) for line in p.read_text().splitlines()]


def test_good_crowd_passes_spammer_and_adversary_are_flagged_careful_are_not(tmp_path, params, dataset, truth):
    report, out = run(tmp_path, params, dataset=dataset)
    assert report["passed"], report["gate"]["reasons"]
    profiles = simulate_crowd(truth, seed=SEED).profiles
    card = pd.read_csv(out / "annotators.csv")
    flagged = {profiles[a] for a in card.loc[card["flagged"], "annotator_id"]}
    assert flagged == {"spammer", "adversary"}
    careful = card[card["annotator_id"].map(profiles) == "careful"]
    assert len(careful) == 2 and not careful["flagged"].any() and (careful["gold_accuracy"] >= 0.9).all()

    labels = pd.read_parquet(out / "labels.parquet")
    assert list(labels.columns[:4]) == ["item_id", "label", "confidence", "method"]
    assert set(labels["item_id"]) == set(truth)  # every approved item got an answer or a review
    accepted = labels[labels["status"] == "accepted"]
    accuracy = (accepted["label"] == accepted["item_id"].map(lambda i: truth[i]["engagement_label"])).mean()
    assert accuracy > 0.95
    labelled = pd.read_parquet(out / "labelled.parquet")
    assert len(labelled) == len(accepted) and {"headline", "engagement_label", "brand_voice"} <= set(labelled.columns)

    decisions = audit(tmp_path)
    assert {d["decision"] for d in decisions} == {"annotator_excluded", "item_to_review", "gate_passed"}
    assert sum(d["decision"] == "item_to_review" for d in decisions) == report["gate"]["metrics"]["items_in_review"]
    html = (out / "qa_report.html").read_text()
    assert "PASSED" in html and html.count("data:image/png;base64") >= 3 and "Items in review" in html


def test_dawid_skene_is_more_accurate_than_majority_vote_on_the_crowd(params):
    truth = open_source("synthetic://?seed=5&n=3000", params).data.truth
    crowd = simulate_crowd(truth, seed=5).annotations
    items = sorted(truth)
    classes = ["negative_engagement", "neutral", "positive_engagement"]
    annotators = sorted(crowd["annotator_id"].unique())
    it = crowd["item_id"].map({k: i for i, k in enumerate(items)}).to_numpy()
    an = crowd["annotator_id"].map({k: i for i, k in enumerate(annotators)}).to_numpy()
    cl = crowd["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    true = np.array([classes.index(truth[i]["engagement_label"]) for i in items])

    ds = dawid_skene(it, an, cl, len(items), len(annotators), 3)
    mv = majority_vote(it, an, cl, len(items), 3)
    ds_acc, mv_acc = (ds.label == true).mean(), (mv.label == true).mean()
    has_mv = mv.label >= 0
    assert ds_acc > mv_acc + 0.05
    assert (ds.label[has_mv] == true[has_mv]).mean() > (mv.label[has_mv] == true[has_mv]).mean()
    # it learned who the adversary is: the annotator whose confusion matrix is off the diagonal
    adversary = annotators.index(next(a for a, p in simulate_crowd(truth, seed=5).profiles.items() if p == "adversary"))
    assert np.trace(ds.confusion[adversary]) < 0.1 * 3
    assert ds.iterations < 100


def test_majority_vote_needs_two_agreeing_annotators():
    # item 0: a, a, b -> a; item 1: a, b, c -> none; item 2: a alone -> none
    agg = majority_vote([0, 0, 0, 1, 1, 1, 2], [0, 1, 2, 0, 1, 2, 0], [0, 0, 1, 0, 1, 2, 0], 3, 3)
    assert agg.label.tolist() == [0, -1, -1]


def test_the_method_can_be_switched_to_majority_vote(tmp_path, params, dataset):
    report, out = run(tmp_path, {**params, "labeling": {**params["labeling"], "method": "majority_vote"}},
                      dataset=dataset)
    labels = pd.read_parquet(out / "labels.parquet")
    assert report["method"] == "majority_vote" and set(labels["method"]) == {"majority_vote", "gold"}


def test_a_bad_batch_is_blocked_and_nothing_is_released(tmp_path, params, dataset, capsys):
    report, out = run(tmp_path, params, annotations=f"{SYNTH}&crowd=bad", gold=f"{SYNTH}&crowd=bad", dataset=dataset)
    assert not report["passed"]
    # five of seven annotators are excluded, so most items are left without two trusted labels
    assert report["gate"]["metrics"]["counted_annotators"] == 2
    assert any(r.startswith("review_share") for r in report["gate"]["reasons"])
    assert report["agreement"]["all_annotators"]["engagement_label"]["alpha_nominal"] < 0.3
    assert not (out / "labelled.parquet").exists() and (out / "qa_report.html").exists()
    with pytest.raises(FileNotFoundError):
        publish_labelled(str(out), str(tmp_path / "datasets"), logical_date="2026-12-01", run_id="t")
    assert [d["decision"] for d in audit(tmp_path) if d["subject"] == "labelled_dataset"] == ["gate_failed"]
    code = main(["-q", "label-qa", "--annotations", f"{SYNTH}&crowd=bad", "--gold", SYNTH, "--dataset", dataset,
                 "--out", str(tmp_path / "cli"), "--audit", str(tmp_path / "audit")])
    assert code == 1 and "FAILED" in capsys.readouterr().out


def test_bad_rows_are_reported_with_reasons_counted_and_nothing_is_lost(tmp_path, params, dataset, truth):
    crowd = simulate_crowd(truth, seed=SEED)
    good = crowd.annotations
    some = sorted(truth)[:3]
    bad = pd.DataFrame([
        {"item_id": "cv-does-not-exist", "annotator_id": "annotator-01", "label": "neutral"},        # unknown_item
        {"item_id": some[0], "annotator_id": "annotator-01", "label": "very_positive"},              # outside taxonomy
        {"item_id": some[1], "annotator_id": "annotator-02", "label": "neutral", "brand_voice": "loud"},  # outside
        {"item_id": some[2], "annotator_id": None, "label": "neutral"},                               # missing_field
        {"item_id": some[0], "annotator_id": "one-off", "label": "neutral", "signal_strength": 7.5},  # one label, bad signal
    ])
    first = good.iloc[[0, 1]]
    conflicting = first.assign(label=np.where(first["label"] == "neutral", "positive_engagement", "neutral"))
    # an item left with one careful annotator's label (not gold: gold items never go to review)
    careful = good[good["annotator_id"].map(crowd.profiles) == "careful"]
    single = sorted(set(careful["item_id"]) - set(crowd.gold["item_id"]))[-1]
    keep_one = careful[careful["item_id"] == single].iloc[[0]]
    rows = pd.concat([good[good["item_id"] != single], keep_one, bad, good.iloc[[5]], conflicting], ignore_index=True)
    rows.to_csv(tmp_path / "a.csv", index=False)
    crowd.gold.to_csv(tmp_path / "gold.csv", index=False)

    report, out = run(tmp_path, params, annotations=str(tmp_path / "a.csv"), gold=str(tmp_path / "gold.csv"),
                      dataset=dataset)
    r = report["rows"]
    assert r["read"] == len(rows) == r["used"] + r["rejected"]
    assert r["rejected_by_reason"] == {"unknown_item": 1, "label_outside_taxonomy": 2, "missing_field": 1,
                                       "duplicate_annotation": 1, "conflicting_duplicate": 2}
    assert r["flags_by_reason"] == {"signal_strength_out_of_range": 1}
    labels = pd.read_parquet(out / "labels.parquet").set_index("item_id")
    assert "single_annotation" in labels.loc[single, "review_reasons"]
    card = pd.read_csv(out / "annotators.csv", keep_default_na=False).set_index("annotator_id")
    assert card.loc["one-off", "n"] == 1 and "too_few_labels" in card.loc["one-off", "reasons"]
    assert report["passed"]  # a few bad rows do not sink a good batch


def test_malformed_exports_never_crash_and_fail_the_gate(tmp_path, params, dataset, capsys):
    (tmp_path / "broken.json").write_text('[{"data": {"item_id": "x"}, "annotations": [')
    report, out = run(tmp_path, params, annotations=str(tmp_path / "broken.json"), dataset=dataset)
    assert not report["passed"] and report["export_issues_by_reason"] == {"malformed_export": 1}
    assert (out / "qa_report.json").exists() and (out / "qa_report.html").exists()

    tasks = [{"data": {"item_id": "a"}, "annotations": "nope"}, "not a task",
             {"data": {"item_id": "b"}, "annotations": [{"completed_by": 1, "was_cancelled": True, "result": []},
                                                       {"completed_by": 2}]}]
    (tmp_path / "odd.json").write_text(json.dumps(tasks))
    report, _ = run(tmp_path, params, annotations=str(tmp_path / "odd.json"), name="odd")
    assert report["export_issues_by_reason"] == {"cancelled_annotation": 1, "malformed_task": 3}
    assert not report["passed"]

    (tmp_path / "nocols.csv").write_text("id,who\n1,2\n")
    code = main(["-q", "label-qa", "--annotations", str(tmp_path / "nocols.csv"), "--gold", SYNTH,
                 "--out", str(tmp_path / "cli"), "--audit", str(tmp_path / "audit")])
    assert code == 1 and "malformed_export" in capsys.readouterr().out
    assert main(["-q", "label-qa", "--annotations", str(tmp_path / "missing.csv"), "--gold", SYNTH,
                 "--out", str(tmp_path / "cli2")]) == 2


def test_a_label_studio_export_gives_the_same_labels_as_the_csv(tmp_path, params, dataset, truth):
    crowd = simulate_crowd(truth, seed=SEED)
    csv_uri, gold_uri = write_crowd(tmp_path, crowd)
    (tmp_path / "export.json").write_text(json.dumps(label_studio_export(crowd.annotations)))
    from_csv, out_csv = run(tmp_path, params, annotations=csv_uri, gold=gold_uri, name="csv", dataset=dataset)
    from_ls, out_ls = run(tmp_path, params, annotations=str(tmp_path / "export.json"), gold=gold_uri, name="ls",
                          dataset=dataset)
    assert from_csv["rows"]["used"] == from_ls["rows"]["used"] == len(crowd.annotations)
    pd.testing.assert_frame_equal(pd.read_parquet(out_csv / "labels.parquet"), pd.read_parquet(out_ls / "labels.parquet"))


def test_the_review_queue_round_trips_through_label_studio(tmp_path, params, dataset, truth):
    first, out = run(tmp_path, params, dataset=dataset, run_id="qa-1")
    queue = json.loads((out / "review_queue.json").read_text())
    assert len(queue) == first["gate"]["metrics"]["items_in_review"] > 0
    assert all(t["data"]["text"] and t["predictions"][0]["result"] for t in queue)

    # the senior labeler opens the tasks in Label Studio, answers, and exports the project
    export = []
    for n, task in enumerate(queue):
        t = truth[task["data"]["item_id"]]
        result = [{"from_name": "engagement", "to_name": "text", "type": "choices",
                   "value": {"choices": [t["engagement_label"]]}},
                  {"from_name": "brand_voice", "to_name": "text", "type": "choices",
                   "value": {"choices": [t["brand_voice"]]}}]
        export.append({"id": n + 1, "data": task["data"], "predictions": task["predictions"],
                       "annotations": [{"id": n + 1, "completed_by": {"id": 9, "email": "senior@brand.example"},
                                        "result": result}]})
    (tmp_path / "reviews.json").write_text(json.dumps(export))

    second, out2 = run(tmp_path, params, dataset=dataset, reviews=str(tmp_path / "reviews.json"), name="qa2",
                       run_id="qa-2")
    assert second["gate"]["metrics"]["items_in_review"] == 0 and second["passed"]
    labels = pd.read_parquet(out2 / "labels.parquet").set_index("item_id")
    reviewed = [t["data"]["item_id"] for t in queue]
    assert (labels.loc[reviewed, "method"] == "review").all()
    assert (labels.loc[reviewed, "reviewed_by"] == "senior@brand.example").all()
    assert [labels.loc[i, "label"] for i in reviewed] == [truth[i]["engagement_label"] for i in reviewed]
    assert json.loads((out2 / "review_queue.json").read_text()) == []
    applied = [d for d in audit(tmp_path) if d["decision"] == "review_applied"]
    assert {d["subject"] for d in applied} == set(reviewed) and {d["who"] for d in applied} == {"senior@brand.example"}
    assert len(list((tmp_path / "audit").glob("*.jsonl"))) == 2  # the first run's decisions are still there


def test_positive_engagement_with_no_signal_goes_to_review(tmp_path, params, dataset, truth):
    crowd = simulate_crowd(truth, seed=SEED)
    rows = crowd.annotations.copy()
    target = next(i for i in sorted(truth) if truth[i]["engagement_label"] == "positive_engagement"
                  and i not in set(crowd.gold["item_id"]))
    mask = rows["item_id"] == target
    rows.loc[mask, ["label", "signal_strength"]] = ["positive_engagement", 0.0]
    rows.to_csv(tmp_path / "a.csv", index=False)
    crowd.gold.to_csv(tmp_path / "gold.csv", index=False)
    report, out = run(tmp_path, params, annotations=str(tmp_path / "a.csv"), gold=str(tmp_path / "gold.csv"))
    labels = pd.read_parquet(out / "labels.parquet").set_index("item_id")
    assert "inconsistent_signal" in labels.loc[target, "review_reasons"]
    assert report["rows"]["inconsistent_signal_rows"] >= mask.sum()
    assert report["dataset_checks"] == {"copy_duplicates": None, "image_duplicates": None}  # no dataset given
