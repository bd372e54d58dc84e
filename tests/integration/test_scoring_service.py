"""The scoring service as a real process on loopback, loading champion and canary from a real
MLflow server: answers, canary share and stickiness, bad input, admin auth, metrics, the
prediction log, and a reload under load from a second process with no failed request."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
import yaml

from tests.conftest import REPO, free_port, wait_for_port

pytestmark = pytest.mark.slow
TOKEN = "test-admin-token"
ITEM = {"text": "Timeless jacket, tailored and refined.", "brand": "Atelier Nord", "industry": "fashion",
        "channel": "social", "audience": "returning_customers"}


@pytest.fixture(scope="module")
def service(mlflow_server, register_variants, tmp_path_factory):
    """Champion v1 and canary v2 (10%) in the registry; v3 registered for the reload test; the
    service process started with a fast reload and flush."""
    import os

    from ml.registry import release

    root = tmp_path_factory.mktemp("serving")
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = mlflow_server
    versions = register_variants(root, (0.0, 0.5, -0.5))
    audit, ledger = str(root / "audit"), str(root / "ledger")
    release.start_canary(release.Actor("rm", "first"), audit_uri=audit, ledger_uri=ledger, weight=0.1,
                         version=versions[0])
    release.start_canary(release.Actor("rm", "canary"), audit_uri=audit, ledger_uri=ledger, weight=0.1,
                         version=versions[1])

    served = yaml.safe_load((REPO / "params.yaml").read_text())
    served["serving"].update(reload_seconds=1, log_flush_seconds=0.5, max_items=4, max_text_bytes=300)
    (root / "params.yaml").write_text(yaml.safe_dump(served))
    port = free_port()
    env = {**os.environ, "CREATIVE_PARAMS": str(root / "params.yaml"), "SCORING_ADMIN_TOKEN": TOKEN,
           "CREATIVE_RELEASE_AUDIT_URI": audit}
    proc = subprocess.Popen([sys.executable, "-m", "ml", "serve", "--port", str(port), "--log-uri",
                             str(root / "predictions")], cwd=REPO, env=env,
                            stdout=open(root / "service.log", "wb"), stderr=subprocess.STDOUT)
    wait_for_port(port, proc, seconds=120)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while requests.get(f"{url}/readyz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, (root / "service.log").read_text()[-3000:]
        time.sleep(0.5)
    yield {"url": url, "versions": versions, "root": root, "audit": audit, "ledger": ledger, "proc": proc}
    proc.terminate()
    proc.wait(timeout=30)
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


def score(url, items, key=None):
    return requests.post(f"{url}/v1/score", json={"items": items, "request_key": key}, timeout=30)


def test_it_answers_with_scores_model_version_and_alias(service):
    r = score(service["url"], [ITEM, {**ITEM, "text": "Guaranteed results, cheap!"}], key="k-1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "creative-copy-scorer" and body["version"] in service["versions"][:2]
    assert body["alias"] == {service["versions"][0]: "champion", service["versions"][1]: "canary"}[body["version"]]
    assert len(body["results"]) == 2
    for result in body["results"]:
        assert set(result["engagement"]) == {"negative_engagement", "neutral", "positive_engagement"}
        assert sum(result["engagement"].values()) == pytest.approx(1, abs=1e-5)
        assert 0 <= result["brand_voice"] <= 1
    assert requests.get(f"{service['url']}/healthz", timeout=5).json() == {"status": "ok"}


def test_the_canary_share_matches_the_weight_and_keys_are_sticky(service):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from loadgen import run

    result = run(f"{service['url']}/v1/score", clients=4, requests=2000, seconds=300, batch=1, key_prefix="share-")
    assert result["requests"] == 2000 and result["failures"] == 0, result
    share = result["versions"].get(service["versions"][1], 0) / 2000
    assert abs(share - 0.10) < 0.025, result["versions"]  # 0.10 ± 3.7 binomial standard deviations
    for key in ("share-7", "alpha", "omega-42"):
        seen = {score(service["url"], [ITEM], key=key).json()["version"] for _ in range(5)}
        assert len(seen) == 1, (key, seen)


def test_concurrent_requests_scored_together_each_get_their_own_answer(service):
    from concurrent.futures import ThreadPoolExecutor

    items = [{**ITEM, "text": f"Variant {i}: " + " ".join(["tailored", "quiet", "LOUD", "cheap", "refined"][: 1 + i % 5])}
             for i in range(12)]
    alone = [score(service["url"], [item], key=f"own-{i}").json() for i, item in enumerate(items)]
    with ThreadPoolExecutor(8) as pool:  # bursts: the service batches what queues up
        together = list(pool.map(lambda i: score(service["url"], [items[i % 12]], key=f"own-{i % 12}").json(),
                                 range(48)))
    for i, answer in enumerate(together):
        expected = alone[i % 12]
        assert answer["version"] == expected["version"]
        assert answer["results"][0]["brand_voice"] == pytest.approx(expected["results"][0]["brand_voice"], abs=1e-4)
    assert len({round(a["results"][0]["brand_voice"], 4) for a in alone}) > 1  # the variants score differently


@pytest.mark.parametrize("body, status, needle", [
    (b'{"items": [', 400, "malformed JSON"),
    (b'{"items": [{"text": "caf\xe9"}]}', 400, "not UTF-8"),
    (json.dumps({"items": []}).encode(), 422, "empty"),
    (json.dumps({"items": [{"text": "only text"}]}).encode(), 422, "lacks brand, industry, channel, audience"),
    (json.dumps({"items": [{**ITEM, "text": "x" * 301}]}).encode(), 413, "301 bytes"),
    (json.dumps({"items": [ITEM] * 5}).encode(), 413, "at most 4"),
    (json.dumps({"records": []}).encode(), 422, "expected"),
])
def test_bad_input_gets_a_clear_4xx_and_the_service_stays_up(service, body, status, needle):
    r = requests.post(f"{service['url']}/v1/score", data=body, headers={"Content-Type": "application/json"},
                      timeout=10)
    assert r.status_code == status and needle in r.json()["error"], r.text
    assert score(service["url"], [ITEM]).status_code == 200


def test_admin_endpoints_need_the_token_and_weights_are_audited(service):
    from ml.registry import release

    url = service["url"]
    assert requests.post(f"{url}/admin/reload", timeout=10).status_code == 401
    assert requests.post(f"{url}/admin/reload", headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 403
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = requests.post(f"{url}/admin/weights", headers=auth, timeout=60,
                      json={"canary_weight": 0.5, "by": "rm-dana", "reason": "ramp step 2"})
    assert r.status_code == 200 and r.json()["canary_weight"] == 0.5, r.text
    assert requests.get(f"{url}/readyz", timeout=5).json()["canary_weight"] == 0.5
    last = release.history(service["audit"], 1)[-1]
    assert last["action"] == "set_weight" and last["who"] == "rm-dana" and last["canary_weight"] == {"from": 0.1, "to": 0.5}
    bad = requests.post(f"{url}/admin/weights", headers=auth, json={"canary_weight": 1.5, "by": "x", "reason": "y"},
                        timeout=60)
    assert bad.status_code == 409 and "(0, 1]" in bad.json()["error"]
    r = requests.post(f"{url}/admin/weights", headers=auth, timeout=60,
                      json={"canary_weight": 0.1, "by": "rm-dana", "reason": "back to 10%"})
    assert r.status_code == 200


def test_metrics_and_the_prediction_log_agree(service):
    from ml.serving.predlog import read_window

    for i in range(20):
        assert score(service["url"], [ITEM], key=f"m-{i}").status_code == 200
    time.sleep(1.5)  # the service flushes the log every 0.5 s
    text = requests.get(f"{service['url']}/metrics", timeout=10).text
    scored = {}
    for line in text.splitlines():
        if line.startswith("scoring_items_total{"):
            labels, value = line.rsplit(" ", 1)
            version = labels.split('model_version="')[1].split('"')[0]
            scored[version] = scored.get(version, 0) + float(value)
    assert "scoring_latency_seconds_bucket" in text and 'scoring_rejected_requests_total{status="413"}' in text
    now = datetime.now(timezone.utc)
    log = read_window(str(service["root"] / "predictions"), now - timedelta(hours=2), now + timedelta(minutes=1))
    ok = log[log["status"] == "ok"]
    assert {v: float(n) for v, n in ok["model_version"].value_counts().items()} == scored
    assert ok["p_on_voice"].between(0, 1).all() and (ok["latency_ms"] > 0).all()
    assert any((service["root"] / "predictions").glob("date=*/hour=*/part-*.parquet"))


def test_a_reload_under_load_fails_no_request(service):
    from ml.registry import release

    v1, v2, v3 = service["versions"]
    out = service["root"] / "load.json"
    load = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "loadgen.py"), "--url",
                             f"{service['url']}/v1/score", "--clients", "2", "--requests", "100000", "--seconds", "300",
                             "--key-prefix", "reload-", "--out", str(out)], stdout=subprocess.DEVNULL)
    time.sleep(2)
    audit, ledger = service["audit"], service["ledger"]
    release.rollback(release.Actor("rm", "swap canary"), audit_uri=audit)
    release.start_canary(release.Actor("rm", "v3 in"), audit_uri=audit, ledger_uri=ledger, weight=0.5, version=v3)
    r = requests.post(f"{service['url']}/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert r.status_code == 200 and r.json()["models"] == {"champion": v1, "canary": v3}
    time.sleep(5)  # traffic on the new pair, however long the reload took on a busy machine
    load.terminate()  # the load generator stops and writes what it saw
    assert load.wait(timeout=90) == 0
    result = json.loads(out.read_text())
    assert result["requests"] > 50 and result["failures"] == 0, result
    assert {v1, v3} <= set(result["versions"]) and set(result["versions"]) <= {v1, v2, v3}
