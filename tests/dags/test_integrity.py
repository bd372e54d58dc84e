"""DAG integrity: every DAG file imports, carries owner, retries, tags and docs, and parsing
it loads none of the heavy libraries (they belong inside task bodies)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
HEAVY = ["tensorflow", "keras", "keras_hub", "pandas", "mlflow", "great_expectations", "evidently", "dvc", "boto3"]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_there_are_dag_files():
    assert [p.stem for p in DAG_FILES] and "creative_data_acquisition" in [p.stem for p in DAG_FILES]


def test_every_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {Path(d.fileloc).stem for d in dagbag.dags.values()} == {p.stem for p in DAG_FILES}


def test_every_dag_has_owner_retries_tags_and_docs(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        assert dag.doc_md and len(dag.doc_md) > 100, dag_id
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", (dag_id, task.task_id)
            assert task.retries >= 1, (dag_id, task.task_id)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_parsing_loads_no_heavy_library(path):
    code = (f"import runpy, sys, json; runpy.run_path({str(path)!r}); "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_acquisition_schedule_and_retries_come_from_params(tmp_path):
    import yaml

    settings = yaml.safe_load((DAGS.parent / "params.yaml").read_text())
    settings["acquire"].update(schedule="@hourly", retries=5, retry_delay_seconds=7)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(settings))
    code = (f"import runpy, json; dag = runpy.run_path({str(DAGS / 'creative_data_acquisition.py')!r})['dag_object']; "
            "t = dag.get_task('acquire'); "
            "print(json.dumps([dag.schedule, t.retries, t.retry_delay.total_seconds()]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "CREATIVE_PARAMS": str(tmp_path / "params.yaml")})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["@hourly", 5, 7.0]
