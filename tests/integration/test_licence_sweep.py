"""The licence and consent sweep end to end on synthetic data: one contract that expires after
the dataset was approved and one consent withdrawn. The new dataset version excludes both and
nothing else, the champion trained on them is blocked and reported, the report names both, the
ledger records the refusals, and a second sweep finds nothing more."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import LENIENT

pytestmark = pytest.mark.slow
DAY = "2026-12-01"
SYNTH = "synthetic://?seed=77&n=700&copy_share=1&image_size=32"


@pytest.fixture(scope="module")
def world(tmp_path_factory, params, trained, labelled_truth):
    import os

    from ml.data.acquire import acquire
    from ml.data.publish import publish_dataset, publish_labelled
    from ml.evaluation.evaluate import evaluate
    from ml.labeling.qa import label_qa
    from ml.licensing.gate import licence_check
    from ml.registry import release
    from ml.registry.tracking import track_and_register

    tmp = tmp_path_factory.mktemp("sweep")
    data = tmp / "data"
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "CREATIVE_MLFLOW_ARTIFACTS")}
    os.environ.update(MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlflow.db'}",
                      CREATIVE_MLFLOW_ARTIFACTS=(tmp / "artifacts").as_uri())
    ledger = str(data / "ledger" / "licences")
    acquire([SYNTH], str(tmp / "acq"), logical_date=DAY, params=params)
    licence_check(str(tmp / "acq" / "manifest.parquet"), str(tmp / "app"), logical_date=DAY, run_id="t",
                  ledger_uri=ledger, params=params)
    qa = label_qa(SYNTH, SYNTH, str(tmp / "qa"), logical_date=DAY, run_id="t", audit_uri=str(tmp / "audit"),
                  params=params, dataset=str(tmp / "app"))
    assert qa["passed"]
    labelled = publish_labelled(str(tmp / "qa"), str(data / "datasets" / "labelled"), logical_date=DAY, run_id="t")
    in_labelled = set(pd.read_parquet(f"{labelled['uri']}/labelled.parquet")["asset_id"])

    # one rights-managed contract ends 40 days after approval, every other one far later
    approved = pd.read_parquet(tmp / "app" / "approved.parquet")
    managed = approved[(approved["licence"] == "rights-managed") & approved["asset_id"].isin(in_labelled)]
    expiring = managed["asset_id"].iloc[0]
    approved.loc[approved["licence"] == "rights-managed", "licence_expires"] = "2030-01-01"
    approved.loc[approved["asset_id"] == expiring, "licence_expires"] = "2027-01-10"
    approved.to_parquet(tmp / "app" / "approved.parquet")
    published = publish_dataset(str(tmp / "app"), str(data / "datasets" / "approved"), logical_date=DAY, run_id="t")
    consented = approved[approved["consent_id"].notna() & approved["asset_id"].isin(in_labelled)]
    withdrawn = consented.iloc[0]
    pd.DataFrame([{"consent_id": withdrawn["consent_id"], "withdrawn_at": "2027-01-05"}]).to_csv(
        tmp / "withdrawn.csv", index=False)

    params_ = {**params, "evaluation": {**params["evaluation"], **LENIENT}}
    train_dir = trained["outputs"]["adapter"].rsplit("/", 1)[0]
    evaluate(train_dir, labelled_truth, str(tmp / "eval"), params_)  # a passing evaluation of the tiny model
    (tmp / "manifest").write_bytes(b"m")
    # registered as trained on the published labelled dataset: that is what its lineage records
    version = track_and_register(train_dir, str(tmp / "eval"), labelled_uri=f"{labelled['uri']}/labelled.parquet",
                                 dataset_version=labelled["version"], manifest_uri=str(tmp / "manifest"),
                                 params=params_)["version"]
    release.start_canary(release.Actor("rm", "first"), audit_uri=str(tmp / "releases"), ledger_uri=ledger,
                         weight=0.1, version=version)
    yield {"tmp": tmp, "data": data, "ledger": ledger, "expiring": expiring, "withdrawn": withdrawn,
           "approved": published, "labelled": labelled, "version": version, "checked": len(approved)}
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def test_the_sweep_finds_both_blocks_the_champion_and_publishes_a_clean_dataset(world, params):
    import mlflow

    from ml.common.audit import AppendOnlyLog
    from ml.licensing.sweep import licence_sweep
    from ml.registry import release
    from ml.registry.tracking import MODEL_NAME

    on = "2027-01-12"  # two days after the contract ended, a week after the consent was withdrawn
    r = licence_sweep(str(world["data"] / "datasets"), on=on, run_id="sweep-1", ledger_uri=world["ledger"],
                      out=str(world["tmp"] / "sweep1"), params=params, withdrawn_uri=str(world["tmp"] / "withdrawn.csv"))
    named = {a["asset_id"]: a["reasons"] for a in r["assets"]}
    assert named == {world["expiring"]: ["licence_expired"], world["withdrawn"]["asset_id"]: ["consent_withdrawn"]}
    assert r["refused_by_reason"] == {"consent_withdrawn": 1, "licence_expired": 1}
    assert r["dataset_versions"]["approved"] == {world["approved"]["version"]: sorted(named)}
    assert r["dataset_versions"]["labelled"] == {world["labelled"]["version"]: sorted(named)}
    assert r["model_versions"] == [{"version": str(world["version"]), "aliases": ["champion"], "assets": sorted(named)}]
    assert r["champion_affected"] and r["retrain"]

    clean = pd.read_parquet(world["data"] / "datasets" / "approved" / r["new_dataset_version"] / "approved.parquet")
    assert set(named).isdisjoint(clean["asset_id"]) and len(clean) == world["checked"] - 2  # nothing else lost
    latest = json.loads((world["data"] / "datasets" / "approved" / "LATEST.json").read_text())
    assert latest["version"] == r["new_dataset_version"] and latest["previous"] == world["approved"]["version"]

    tag = json.loads(mlflow.MlflowClient().get_model_version(MODEL_NAME, world["version"]).tags["promotion_blocked"])
    assert tag["n_assets"] == 2 and set(tag["reasons"]) == {"licence_expired", "consent_withdrawn"}
    with pytest.raises(release.ReleaseError, match="blocked from promotion"):
        release.check_promotable(world["version"], world["ledger"])
    sweep_decisions = [d for d in AppendOnlyLog(world["ledger"]).read() if d["run_id"] == "sweep-1"]
    assert sorted(d["asset_id"] for d in sweep_decisions) == sorted(named)
    html = (world["tmp"] / "sweep1" / "sweep.html").read_text()
    assert "CHAMPION AFFECTED" in html and world["expiring"][:16] in html

    # the same day again: the clean dataset has nothing left to refuse, nothing is published twice
    again = licence_sweep(str(world["data"] / "datasets"), on=on, run_id="sweep-2", ledger_uri=world["ledger"],
                          out=str(world["tmp"] / "sweep2"), params=params,
                          withdrawn_uri=str(world["tmp"] / "withdrawn.csv"))
    assert again["refused"] == 0 and again["new_dataset_version"] is None and again["ledger_part"] is None


def test_the_command_says_plainly_when_there_is_nothing_to_sweep(world, capsys):
    from ml.__main__ import main

    code = main(["licence-sweep", "--datasets", str(world["tmp"] / "empty"), "--out", str(world["tmp"] / "s0"),
                 "--on", "2027-01-12"])
    assert code == 2 and "nothing to sweep" in capsys.readouterr().err


def test_the_daily_dag_republishes_announces_and_fails_loudly_for_the_champion(world, monkeypatch):
    import runpy
    from datetime import datetime, timezone

    from tests.conftest import REPO

    monkeypatch.setenv("CREATIVE_DATA_URI", str(world["data"]))
    dag = runpy.run_path(str(REPO / "dags" / "creative_licence_sweep.py"))["dag_object"]
    before = json.loads((world["data"] / "datasets" / "approved" / "LATEST.json").read_text())["version"]
    dr = dag.test(logical_date=datetime(2030, 1, 2, tzinfo=timezone.utc))  # every other contract ended 2030-01-01
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert states == {"sweep": "success", "republished": "success", "announce": "success",
                      "check_champion": "failed"}, states
    assert dr.state == "failed"
    report = json.loads((world["data"] / "runs" / "2030-01-02T00_00_00+00_00" / "sweep" / "sweep.json").read_text())
    assert report["refused_by_reason"]["licence_expired"] >= 1 and report["champion_affected"]
    latest = json.loads((world["data"] / "datasets" / "approved" / "LATEST.json").read_text())
    assert latest["version"] == report["new_dataset_version"] != before
