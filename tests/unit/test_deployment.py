"""The production deployment files: the compose file names every component, runs Airflow on
the CeleryExecutor with PostgreSQL and Redis, takes every secret from the env file (an example
is committed, the real one is git-ignored), and every setting it passes is in the README's table.
`docker compose config` validates the files where a compose client is installed."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO

DOCKER = REPO / "docker"
AIRFLOW = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
           "airflow-worker-1", "airflow-worker-2", "airflow-init"]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_every_component_is_there_and_airflow_runs_on_celery_postgres_and_redis(compose):
    services = compose["services"]
    assert set(AIRFLOW + ["postgres", "redis", "minio", "minio-buckets", "mlflow", "scoring"]) <= set(services)
    for name in AIRFLOW:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:"), name
        assert env["CREATIVE_DATA_URI"].startswith("s3://"), name  # no shared local folder between workers
    workers = [" ".join(services[w]["command"]) for w in ("airflow-worker-1", "airflow-worker-2")]
    assert all("celery worker" in w for w in workers) and len({re.search(r"hostname (\S+)", w)[1] for w in workers}) == 2
    mlflow = " ".join(services["mlflow"]["command"])
    assert "--backend-store-uri=postgresql" in mlflow and "--artifacts-destination=s3://" in mlflow
    assert services["scoring"]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_secrets_come_from_the_env_file_and_only_an_example_is_committed():
    text = (DOCKER / "compose.yaml").read_text()
    referenced = set(re.findall(r"\$\{(\w+)", text))
    defaulted = set(re.findall(r"\$\{(\w+):-", text))
    example = dict(line.split("=", 1) for line in (DOCKER / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert referenced - defaulted <= set(example), referenced - defaulted - set(example)
    assert set(example) <= referenced, set(example) - referenced  # nothing stale in the example
    for key in ("PASSWORD", "SECRET", "TOKEN", "FERNET"):
        assert all(v.startswith("CHANGE-ME") for k, v in example.items() if key in k), key
    compose = yaml.safe_load(text)
    for name, service in compose["services"].items():  # no literal secret in the compose file
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|TOKEN|FERNET|SQL_ALCHEMY_CONN|RESULT_BACKEND", key):
                assert "${" in str(value), (name, key)
    ignored = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=REPO)
    assert ignored.returncode == 0, "docker/.env must be git-ignored"


def test_every_setting_the_stack_passes_is_in_the_readme_table(compose):
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Settings"):]
    names = set()
    for service in compose["services"].values():
        names |= set((service.get("environment") or {}))
    names -= {"POSTGRES_USER", "POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD", "MINIO_ROOT_USER",
              "MINIO_ROOT_PASSWORD"}  # the images' own, set from docker/.env
    missing = sorted(n for n in names if f"`{n}`" not in table)
    assert not missing, f"settings missing from the README's table: {missing}"


def test_the_dockerfile_copies_only_what_exists():
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source


@pytest.mark.skipif(not shutil.which("docker"), reason="no docker client")
def test_docker_compose_accepts_the_files():
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker client has no compose plugin here")
    done = subprocess.run(["docker", "compose", "--env-file", str(DOCKER / ".env.example"), "-f",
                           str(DOCKER / "compose.yaml"), "config", "-q"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
