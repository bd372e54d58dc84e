"""The drift monitoring DAG with dag.test() on seeded prediction-log windows: several windows
from the same process as the champion's training data raise no alarm; a real shift of the
copy triggers retraining (the Asset event); a drifting canary is rolled back; outcomes that
moved (target drift) trigger retraining too."""
from __future__ import annotations

import runpy
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import REPO, truth_frame

pytestmark = pytest.mark.slow
DAY = datetime(2031, 3, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def world(tmp_path_factory, params, register_variants):
    import os

    from ml.registry import release
    from ml.training.model import Scorer

    tmp = tmp_path_factory.mktemp("drift")
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "CREATIVE_MLFLOW_ARTIFACTS", "CREATIVE_DATA_URI")}
    os.environ.update(MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlflow.db'}",
                      CREATIVE_MLFLOW_ARTIFACTS=(tmp / "artifacts").as_uri(), CREATIVE_DATA_URI=str(tmp / "data"))
    versions = register_variants(tmp, (0.0, 3.0))
    scorers = [Scorer.from_adapter(str(tmp / f"train{i}" / "adapter.npz")) for i in range(2)]
    audit = str(tmp / "data" / "ledger" / "releases")
    release.start_canary(release.Actor("rm", "first"), audit_uri=audit, ledger_uri=str(tmp / "l"), weight=0.1,
                         version=versions[0])
    dag = runpy.run_path(str(REPO / "dags" / "creative_drift_monitoring.py"))["dag_object"]
    yield {"tmp": tmp, "versions": versions, "scorers": scorers, "dag": dag, "audit": audit, "params": params}
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def write_window(world, hour: int, seed: int, scorer_index: int, version: str, alias: str, loud: bool = False):
    """One hour of prediction-log rows: copy of the generator scored by a model, as the service logs it."""
    from ml.serving.predlog import PredictionLog

    frame = truth_frame(f"synthetic://?seed={seed}&n=240&copy_share=0.5&problem_share=0", world["params"])
    items = [{"text": f"{r.headline} {r.body}", "brand": r.brand, "industry": r.industry, "channel": r.channel,
              "audience": r.audience, "cta": r.cta} for r in frame.itertuples()]
    if loud:
        items = [{**i, "text": i["text"].upper() + " BUY NOW!!!", "industry": "electronics"} for i in items]
    scores = world["scorers"][scorer_index].score_items(items)
    start = DAY + timedelta(hours=hour)
    rows = [{"ts": start + timedelta(seconds=10 * k), "request_key": f"{seed}-{k}", "model_version": version,
             "alias": alias, **{f: item[f] for f in ("text", "brand", "industry", "channel", "audience")},
             "p_negative_engagement": float(e[0]), "p_neutral": float(e[1]), "p_positive_engagement": float(e[2]),
             "p_on_voice": float(v), "latency_ms": 15.0, "status": "ok"}
            for k, (item, e, v) in enumerate(zip(items, scores["engagement"], scores["brand_voice"]))]
    log = PredictionLog(str(world["tmp"] / "data" / "predictions"))
    log.append(rows)
    log.flush()


def run(world, hour: int):
    dr = world["dag"].test(logical_date=DAY + timedelta(hours=hour + 1))  # judges [hour, hour + 1)
    return dr, {ti.task_id: ti.state for ti in dr.get_task_instances()}


def test_windows_from_the_same_process_raise_no_alarm(world):
    v1 = world["versions"][0]
    for hour, seed in ((0, 31), (1, 32), (2, 33)):
        write_window(world, hour, seed, 0, v1, "champion")
        dr, states = run(world, hour)
        assert dr.state == "success" and states["trigger_retraining"] == "skipped", (hour, states)
    assert (world["tmp"] / "data" / "monitoring" / "reference" / v1 / "reference.json").exists()  # built once, reused
    assert (world["tmp"] / "data" / "monitoring" / "windows" / "2031-03-01T02_00_00+00_00" / "champion"
            / "drift.html").exists()


def test_a_shifted_window_triggers_retraining(world):
    write_window(world, 3, 34, 0, world["versions"][0], "champion", loud=True)
    dr, states = run(world, 3)
    assert dr.state == "success" and states["trigger_retraining"] == "success", states
    import mlflow

    runs = mlflow.search_runs(experiment_names=["creative-copy-scorer-monitoring"])
    assert len(runs) == 4 and runs["metrics.dataset_drift"].sum() == 1


def test_a_drifting_canary_is_rolled_back(world):
    from ml.registry import release

    v1, v2 = world["versions"]
    release.start_canary(release.Actor("rm", "try v2"), audit_uri=world["audit"], ledger_uri=str(world["tmp"] / "l"),
                         weight=0.5, version=v2)
    write_window(world, 4, 35, 0, v1, "champion")
    write_window(world, 4, 36, 1, v2, "canary")  # its voice scores moved far from the champion's training data
    dr, states = run(world, 4)
    assert dr.state == "success", states
    assert release.state()["aliases"] == {"champion": v1}
    last = release.history(world["audit"], 1)[-1]
    assert last["action"] == "abort_canary" and last["who"] == "creative_drift_monitoring"


def test_outcomes_that_moved_trigger_retraining(world):
    import mlflow

    from ml.common import io
    from ml.serving.predlog import partition

    v1 = world["versions"][0]
    write_window(world, 5, 37, 0, v1, "champion")  # the copy is as usual
    feed = truth_frame("synthetic://?seed=38&n=240&copy_share=1&problem_share=0", world["params"])
    feed = feed.assign(ts=DAY + timedelta(hours=5, minutes=30), clicks=feed["clicks"] // 3)  # a third of the clicks
    io.write_parquet(io.join(partition(str(world["tmp"] / "data" / "outcomes"), DAY + timedelta(hours=5)), "feed.parquet"),
                     feed[["ts", "copy_variant_id", "impressions", "clicks", "conversions"]])
    dr, states = run(world, 5)
    assert dr.state == "success" and states["trigger_retraining"] == "success", states
    last = mlflow.search_runs(experiment_names=["creative-copy-scorer-monitoring"], order_by=["start_time DESC"]).iloc[0]
    assert last["metrics.dataset_drift"] == 0 and last["metrics.target_drift_ctr"] < 0.001
