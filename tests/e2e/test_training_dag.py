"""The training DAG end to end with dag.test(): labelled dataset → train → evaluate → register
into an MLflow store of the test's own; a failing gate fails the run and registers nothing."""
from __future__ import annotations

import runpy
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "creative_training.py"
SYNTH = "synthetic://?seed=42&n=400"
pytestmark = pytest.mark.slow
LENIENT = {"min_macro_f1": 0.0, "min_voice_accuracy": 0.0, "min_industries": 0, "max_ece": 1.0, "max_slice_drop": 1.0,
           "invariance_tolerance": 1.0, "min_direction_pass_rate": 0.0, "min_mft_pass_rate": 0.0,
           "max_p95_ms": {1: 10**6, 4: 10**6}, "latency_calls": 5, "max_findings": 10**6}


@pytest.fixture(scope="module")
def dag():
    return runpy.run_path(str(DAG_FILE))["dag_object"]


@pytest.fixture(scope="module")
def world(tmp_path_factory, params):
    """A published labelled dataset, made the way the acquisition and labeling DAGs make it."""
    from ml.data.acquire import acquire
    from ml.data.publish import publish_dataset, publish_labelled
    from ml.labeling.qa import label_qa
    from ml.licensing.gate import licence_check

    tmp = tmp_path_factory.mktemp("world")
    root = tmp / "data"
    acquire([f"{SYNTH}&image_size=32"], str(tmp / "acq"), logical_date="2031-05-01", params=params)
    licence_check(str(tmp / "acq" / "manifest.parquet"), str(tmp / "app"), logical_date="2031-05-01", run_id="t",
                  ledger_uri=str(root / "ledger" / "licences"), params=params)
    approved = publish_dataset(str(tmp / "app"), str(root / "datasets" / "approved"), logical_date="2031-05-01", run_id="t")
    qa = label_qa(SYNTH, SYNTH, str(tmp / "qa"), logical_date="2031-05-01", run_id="t",
                  audit_uri=str(root / "ledger" / "labeling"), params=params, dataset=approved["uri"])
    assert qa["passed"]
    labelled = publish_labelled(str(tmp / "qa"), str(root / "datasets" / "labelled"), logical_date="2031-05-01", run_id="t")
    return tmp, root, labelled


@pytest.fixture
def env(world, monkeypatch, params):
    tmp, root, labelled = world

    def use(evaluation: dict, name: str):
        p = {**params, "training": {**params["training"], "max_seq_len": 24, "batch_size": 16},
             "evaluation": {**params["evaluation"], **evaluation}}
        path = tmp / f"params-{name}.yaml"
        path.write_text(yaml.safe_dump(p))
        monkeypatch.setenv("CREATIVE_PARAMS", str(path))
        monkeypatch.setenv("CREATIVE_DATA_URI", str(root))
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
        monkeypatch.setenv("CREATIVE_MLFLOW_ARTIFACTS", (tmp / "mlartifacts").as_uri())
        return root, labelled
    return use


def run(dag, day: int, **conf):
    dr = dag.test(logical_date=datetime(2031, 5, day, tzinfo=timezone.utc),
                  run_conf={"epochs": 1, "lora_rank": 2, **conf})
    return dr, {ti.task_id: ti.state for ti in dr.get_task_instances()}


def versions():
    import mlflow

    from ml.registry.tracking import MODEL_NAME, configure

    configure()
    return mlflow.MlflowClient().search_model_versions(f"name='{MODEL_NAME}'")


def test_a_passing_run_registers_the_challenger(dag, env):
    import mlflow

    from ml.registry.tracking import MODEL_NAME

    root, labelled = env(LENIENT, "lenient")
    dr, states = run(dag, 1, brands=["Voltix", "Atelier Nord", "Maison Verte", "Casa Bright"])
    assert dr.state == "success", states
    registered = versions()
    assert len(registered) == 1
    version = mlflow.MlflowClient().get_model_version_by_alias(MODEL_NAME, "challenger")
    assert version.tags["dataset_version"] == labelled["version"] and version.tags["gate_passed"] == "true"
    run_dir = root / "runs" / "2031-05-01T00_00_00+00_00" / "training"
    assert (run_dir / "model" / "adapter.npz").exists() and (run_dir / "evaluation" / "evaluation.html").exists()


def test_a_run_with_nothing_changed_since_the_champion_skips_and_registers_nothing(dag, env):
    import mlflow

    from ml.registry.tracking import MODEL_NAME

    env(LENIENT, "lenient")
    brands = ["Voltix", "Atelier Nord", "Maison Verte", "Casa Bright"]
    client = mlflow.MlflowClient()
    challenger = client.get_model_version_by_alias(MODEL_NAME, "challenger")  # the passing run's version
    client.set_registered_model_alias(MODEL_NAME, "champion", challenger.version)
    before = len(versions())
    dr, states = run(dag, 4, brands=brands)  # same dataset, commit and params as the champion
    assert dr.state == "success", states
    assert states["changed"] == "success" and states["train"] == "skipped" and states["register"] == "skipped"
    assert len(versions()) == before
    dr, states = run(dag, 5, brands=brands[:3])  # another brand subset: a change, so it trains
    assert states["train"] == "success", states
    client.delete_registered_model_alias(MODEL_NAME, "champion")


def test_a_failing_gate_fails_the_run_tracks_it_and_registers_nothing(dag, env):
    import mlflow

    from ml.registry.tracking import EXPERIMENT

    env({"min_macro_f1": 0.99}, "strict")
    before = len(versions())
    dr, states = run(dag, 2)
    assert dr.state == "failed"
    assert states["evaluate"] == "failed" and states["register"] == "upstream_failed"
    assert len(versions()) == before
    runs = mlflow.search_runs(experiment_names=[EXPERIMENT], filter_string="tags.gate_passed = 'false'")
    assert len(runs) >= 1


def test_bad_params_are_refused_before_anything_runs(dag, env):
    env(LENIENT, "lenient")
    with pytest.raises(Exception, match="lora_rank|maximum|schema|valid"):
        run(dag, 3, lora_rank=1000)
