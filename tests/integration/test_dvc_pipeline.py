"""The DVC pipeline (acquisition to labeling QA): byte-identical outputs for the same seed and params, pushed to S3
(moto's server on loopback) and pulled back intact."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ml.common import io

REPO = Path(__file__).resolve().parents[2]
OUTS = ("data/acquired", "data/approved", "data/contracts", "data/labels")
pytestmark = pytest.mark.slow


def sh(*cmd, cwd, env=None):
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for out in OUTS for p in sorted((root / out).rglob("*")) if p.is_file() and p.name != ".gitignore"}


@pytest.fixture
def project(tmp_path):
    """A copy of the pipeline in its own git + DVC repository, sized down for the test."""
    root = tmp_path / "project"
    for name in ("ml", "data_contracts", ".dvc"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "tmp", "cache"))
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["synthetic"].update(n=120, image_size=48)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "CREATIVE_PARAMS": str(root / "params.yaml"),
           "CREATIVE_CONTRACTS_DIR": str(root / "data_contracts")}
    sh("git", "init", "-q", cwd=root)
    return root, env


def test_same_seed_and_params_give_byte_identical_outputs_and_push_to_s3(project, bucket):
    root, env = project
    sh("dvc", "repro", "label_qa", cwd=root, env=env)
    first = digests(root)
    assert any(k.startswith("data/acquired/assets/") for k in first)
    assert {"data/acquired/manifest.parquet", "data/approved/approved.parquet",
            "data/contracts/ad_copy/validation.json", "data/labels/labelled.parquet", "data/labels/qa_report.html"} <= set(first)
    for out in OUTS:
        shutil.rmtree(root / out)
    sh("dvc", "repro", "--force", "--no-run-cache", "label_qa", cwd=root, env=env)
    assert digests(root) == first

    sh("dvc", "remote", "add", "s3", f"s3://{bucket}/dvc", cwd=root, env=env)
    sh("dvc", "remote", "modify", "s3", "endpointurl", os.environ["AWS_ENDPOINT_URL"], cwd=root, env=env)
    sh("dvc", "push", "-r", "s3", "--with-deps", "label_qa", cwd=root, env=env)
    keys = list(io.list_keys(f"s3://{bucket}/dvc"))
    assert len(keys) >= len(first)  # every file, plus the directory listings

    for out in OUTS:
        shutil.rmtree(root / out)
    shutil.rmtree(root / ".dvc" / "cache")
    sh("dvc", "pull", "-r", "s3", "--with-deps", "label_qa", cwd=root, env=env)
    assert digests(root) == first
