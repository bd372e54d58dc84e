"""Data contracts: Great Expectations 1.x suites from ``data_contracts/suites`` run with the
ephemeral context. The result is saved as ``validation.json`` (stable: no random ids or
timestamps, so the same table gives the same bytes) and ``validation.html`` for stewards.
"""
from __future__ import annotations

import html
import json
import os

from ml.common import io
from ml.common.config import InputError, contracts_dir
from ml.common.verdict import Verdict



def load_suite(name: str) -> dict:
    path = contracts_dir() / "suites" / f"{name}.json"
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.json"))
        raise InputError(f"no data contract suite {name!r}; known: {', '.join(known)}")
    return json.loads(path.read_text(encoding="utf-8"))


def _summary(result: dict) -> dict:
    keep = ("observed_value", "element_count", "unexpected_count", "unexpected_percent",
            "partial_unexpected_list", "missing_count")
    return {k: result[k] for k in keep if k in result}


def check_table(frame, suite: dict) -> Verdict:
    """Run one suite on a DataFrame; the verdict's metrics hold one entry per expectation."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (context.data_sources.add_pandas("contracts").add_dataframe_asset(suite["name"])
             .add_batch_definition_whole_dataframe("whole"))
    gx_suite = context.suites.add(gx.ExpectationSuite(name=suite["name"], expectations=suite["expectations"]))
    run = gx.ValidationDefinition(data=batch, suite=gx_suite, name=f"validate-{suite['name']}")
    outcome = run.run(batch_parameters={"dataframe": frame}).to_json_dict()
    results = []
    for item in outcome["results"]:
        config = item["expectation_config"]
        kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
        error = (item.get("exception_info") or {}).get("exception_message")
        results.append({"expectation": config["type"], "kwargs": kwargs, "success": bool(item["success"]),
                        "result": _summary(item.get("result") or {}), **({"error": error} if error else {})})
    failed = [f"{r['expectation']}({r['kwargs'].get('column') or r['kwargs'].get('column_A', '')})"
              for r in results if not r["success"]]
    return Verdict(bool(outcome["success"]), failed,
                   {"suite": suite["name"], "rows": int(len(frame)), "statistics": outcome["statistics"],
                    "results": results})


def render_html(table_uri: str, verdict: Verdict) -> str:
    m = verdict.metrics
    status = "PASSED" if verdict.passed else "FAILED"
    rows = []
    for r in m["results"]:
        args = ", ".join(f"{k}={v!r}" for k, v in r["kwargs"].items())
        detail = r.get("error") or ", ".join(f"{k}: {v}" for k, v in r["result"].items())
        rows.append(f"<tr class={'ok' if r['success'] else 'bad'}><td>{'✔' if r['success'] else '✘'}</td>"
                    f"<td>{html.escape(r['expectation'])}</td><td><code>{html.escape(args)}</code></td>"
                    f"<td>{html.escape(detail)[:600]}</td></tr>")
    stats = m["statistics"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Data contract {html.escape(m['suite'])}: {status}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}
tr.bad{{background:#fde2e2}}tr.ok td:first-child{{color:#2a7}}tr.bad td:first-child{{color:#c22}}</style></head><body>
<h1>Data contract <code>{html.escape(m['suite'])}</code>: {status}</h1>
<p>Table: <code>{html.escape(table_uri)}</code> · rows: {m['rows']} · expectations met:
{stats['successful_expectations']} of {stats['evaluated_expectations']}</p>
<table><tr><th></th><th>expectation</th><th>arguments</th><th>observed</th></tr>
{''.join(rows)}</table></body></html>
"""


def validate(table_uri: str, suite_name: str, out: str) -> dict:
    """The ``validate`` stage: run a suite on a Parquet table, write JSON and HTML reports."""
    verdict = check_table(io.read_parquet(table_uri), load_suite(suite_name))
    report = {"stage": "validate", "table": table_uri, "suite": suite_name, "passed": verdict.passed,
              "failed_expectations": verdict.reasons, **verdict.metrics,
              "outputs": {"json": io.join(out, "validation.json"), "html": io.join(out, "validation.html")}}
    io.write_text(io.join(out, "validation.json"), json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    io.write_text(io.join(out, "validation.html"), render_html(table_uri, verdict))
    return report
