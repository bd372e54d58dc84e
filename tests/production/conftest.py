"""The production configuration as local processes: Airflow with the CeleryExecutor on the
machine's PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) — the api-server, the scheduler,
the dag-processor and two `airflow celery worker` processes — with the data on the loopback S3
server only. Each test module gets its own database, Redis database and bucket, and removes
them afterwards."""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import REPO, free_port

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379"


def _admin(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def create_database(prefix: str) -> str:
    """A new, empty PostgreSQL database for one test module; drop it with ``drop_database``."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        _admin(f"CREATE DATABASE {name}")
    except Exception as exc:  # noqa: BLE001 - the message says what is missing
        pytest.fail(f"the production-configuration tests need PostgreSQL on 127.0.0.1:5432 (trust auth): {exc}")
    return name


def drop_database(name: str) -> None:
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def remove_bucket(bucket: str) -> None:
    from ml.common import io

    for page in io.s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            io.s3_client().delete_object(Bucket=bucket, Key=obj["Key"])
    io.s3_client().delete_bucket(Bucket=bucket)


class Stack:
    """The running processes and a REST client of the api-server."""

    def __init__(self, home: Path, env: dict, url: str):
        self.home, self.env, self.url = home, env, url
        self.procs: dict[str, subprocess.Popen] = {}
        self.specs: dict[str, tuple] = {}
        self._token = None

    def start(self, name: str, *args: str, **extra_env: str) -> subprocess.Popen:
        self.specs[name] = (args, extra_env)
        log = open(self.home / f"{name}.log", "ab")
        proc = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), *args], cwd=REPO,
                                env={**self.env, **extra_env}, stdout=log,
                                stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM, wait: float = 60) -> None:
        proc = self.procs.pop(name)
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    def tree(self, names=None) -> list[int]:
        """The pids of the named processes (all by default) and of everything they started, found
        through parent pids: a task's supervisor and the task run in sessions of their own and
        retitle themselves, so neither the process group nor the environment finds them."""
        parents = {}
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit():
                    parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
        found = [p.pid for n, p in self.procs.items() if names is None or n in names]
        for pid in found:
            found += [child for child, parent in parents.items() if parent == pid and child not in found]
        return found

    def kill(self, name: str) -> list[int]:
        """SIGKILL a process and everything it started, as a crashed machine would."""
        pids = self.tree([name])
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.procs.pop(name).wait(timeout=30)
        return pids

    def restart(self, name: str) -> subprocess.Popen:
        args, extra_env = self.specs[name]
        return self.start(name, *args, **extra_env)

    def api(self, method: str, path: str, **kwargs) -> dict:
        if self._token is None:
            self._token = requests.get(f"{self.url}/auth/token", timeout=30).json()["access_token"]
        r = requests.request(method, f"{self.url}/api/v2{path}", headers={"Authorization": f"Bearer {self._token}"},
                             timeout=60, **kwargs)
        if r.status_code >= 400:
            raise AssertionError(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content else {}

    def trigger(self, dag_id: str, logical_date: str, conf: dict) -> str:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        return self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": logical_date, "conf": conf})["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str, seconds: float = 900) -> tuple[str, list[dict]]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            state = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state, self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
            for name, proc in self.procs.items():
                if proc.poll() is not None and name.startswith(("scheduler", "api")):
                    raise AssertionError(f"{name} exited with {proc.returncode}: {self.tail(name)}")
            time.sleep(3)
        raise AssertionError(f"{dag_id} {run_id} did not finish in {seconds} s; scheduler log: {self.tail('scheduler')}")

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


@pytest.fixture(scope="module")
def stack(tmp_path_factory, s3_server, request):
    """The stack for one test module; the module's ``STACK_ENV`` (a dict) is added to every
    process's environment."""
    from ml.common import io

    database = create_database("creative_af")
    tag = database.rsplit("_", 1)[1]
    bucket, redis_db = f"creative-{tag}", int(tag, 16) % 15 + 1
    io.s3_client().create_bucket(Bucket=bucket)
    home = tmp_path_factory.mktemp("airflow-celery")
    settings = yaml.safe_load((REPO / "params.yaml").read_text())
    settings["acquire"]["schedule"] = None  # runs come from the REST API only, not from the calendar
    settings["acquire"]["retry_delay_seconds"] = 5  # the fault tests wait for a retry, not for a minute
    (home / "params.yaml").write_text(yaml.safe_dump(settings))
    port = free_port()
    env = {**os.environ,
           "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{PG}/{database}",
           "AIRFLOW__CELERY__BROKER_URL": f"{REDIS}/{redis_db}",
           "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://postgres@127.0.0.1:5432/{database}",
           "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
           "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
           "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
           "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
           "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.production.worker_name.hostname",
           "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
           "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
           "PYTHONPATH": str(REPO), "CREATIVE_PARAMS": str(home / "params.yaml"),
           "CREATIVE_DATA_URI": f"s3://{bucket}/creative",
           **getattr(request.module, "STACK_ENV", {})}
    for key in ("MLFLOW_TRACKING_URI", "CREATIVE_MLFLOW_ARTIFACTS"):
        env.pop(key, None)
    url = f"http://127.0.0.1:{port}"
    s = Stack(home, env, url)
    s.bucket = bucket
    migrate = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=600)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    try:
        s.start("api-server", "api-server", "--port", str(port))
        s.start("scheduler", "scheduler")
        s.start("dag-processor", "dag-processor")
        for name in ("worker-1", "worker-2"):
            s.start(name, "celery", "worker", "--celery-hostname", f"{name}@{tag}", "--concurrency", "1",
                    CREATIVE_WORKER_NAME=name)
        deadline = time.monotonic() + 180
        while True:  # the api-server answers and the dag-processor has parsed the DAG files
            try:
                if len(s.api("GET", "/dags", params={"limit": 100})["dags"]) >= 6:
                    break
            except (requests.RequestException, AssertionError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the stack did not come up in 180 s: {s.tail('api-server')} {s.tail('dag-processor')}")
            time.sleep(2)
        yield s
    finally:
        started = s.tree()
        for name in list(s.procs):
            s.stop(name)
        for pid in started:  # what a stopped process left behind
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        drop_database(database)
        import redis

        redis.Redis.from_url(f"{REDIS}/{redis_db}").flushdb()
        remove_bucket(bucket)


@pytest.fixture(scope="module")
def mlflow_production(tmp_path_factory, s3_server):
    """An MLflow tracking server with its backend store in PostgreSQL and its artifacts on the
    loopback S3 server; yields its URL, the database and the bucket."""
    from ml.common import io
    from tests.conftest import wait_for_port

    database = create_database("creative_mlflow")
    bucket = f"mlflow-{database.rsplit('_', 1)[1]}"
    io.s3_client().create_bucket(Bucket=bucket)
    root = tmp_path_factory.mktemp("mlflow-production")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"{PG}/{database}", "--artifacts-destination",
                             f"s3://{bucket}/artifacts", "--workers", "1"],
                            env={**os.environ, "MLFLOW_S3_ENDPOINT_URL": s3_server}, cwd=root,
                            stdout=open(root / "server.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, proc, seconds=180)
        yield {"url": f"http://127.0.0.1:{port}", "database": database, "bucket": bucket, "log": root / "server.log",
               "pgid": proc.pid}  # the server and its uvicorn workers
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        drop_database(database)
        remove_bucket(bucket)
