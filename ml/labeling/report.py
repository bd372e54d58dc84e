"""The labeling QA page for data stewards: one self-contained HTML file with embedded plots."""
from __future__ import annotations

import base64
import html
from io import BytesIO

import numpy as np
import pandas as pd

CSS = """body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;vertical-align:top;text-align:left}th{background:#f4f4f4}
.bad{background:#fde2e2}.ok{color:#2a7}.fail{color:#c22}img{max-width:100%}.num{text-align:right}
.figs{display:flex;flex-wrap:wrap;gap:1em}"""


def _fig(draw) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=90)
    try:
        draw(ax)
        fig.tight_layout()
        buf = BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "–" if np.isnan(v) else f"{v:.3f}"
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(x, float) for x in v):
        return f"[{_fmt(v[0])}, {_fmt(v[1])}]"
    return html.escape(str(v))


def _table(frame: pd.DataFrame, bad=None) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cls = ' class="bad"' if bad is not None and bool(bad.iloc[i]) else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _confusion_plot(matrix: pd.DataFrame, title: str):
    def draw(ax):
        ax.imshow(matrix.to_numpy(dtype=float), cmap="Blues")
        ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=30, ha="right", fontsize=7)
        ax.set_yticks(range(matrix.shape[0]), matrix.index, fontsize=7)
        for (y, x), v in np.ndenumerate(matrix.to_numpy()):
            ax.text(x, y, str(int(v)), ha="center", va="center", fontsize=8)
        ax.set_xlabel("consensus")
        ax.set_ylabel("gold")
        ax.set_title(title, fontsize=9)
    return _fig(draw)


def render_html(report: dict, labels: pd.DataFrame, card: pd.DataFrame, taxonomy) -> str:
    gate = report["gate"]
    status = "PASSED" if report["passed"] else "FAILED"
    parts = [f"<h1>Labeling QA: <span class={'ok' if report['passed'] else 'fail'}>{status}</span></h1>",
             f"<p>Run <code>{html.escape(report['run_id'])}</code> · as of {report['logical_date']} · taxonomy "
             f"{html.escape(report['taxonomy_version'])} · aggregation <b>{report['method']}</b> · "
             f"annotations: <code>{html.escape(str(report['inputs']['annotations']))}</code></p>"]
    parts.append("<h2>Gate</h2><ul>" + "".join(f"<li class=fail>{html.escape(r)}</li>" for r in gate["reasons"])
                 + ("<li class=ok>all thresholds met</li>" if not gate["reasons"] else "") + "</ul>")
    rows = report["rows"]
    parts.append(f"<p>Annotation rows read {rows['read']} = used {rows['used']} + rejected {rows['rejected']} "
                 f"{_fmt(rows['rejected_by_reason'])}; flags {_fmt(rows['flags_by_reason'])}; export issues "
                 f"{_fmt(report['export_issues_by_reason'])}. Items {gate['metrics']['items']}, in review "
                 f"{gate['metrics']['items_in_review']} ({gate['metrics']['review_share']:.1%}); gold items "
                 f"{report['gold_items']}.</p>")

    agree = []
    for who, per_field in report["agreement"].items():
        for field, a in per_field.items():
            for key, value in a.items():
                if key.startswith("alpha_") and not key.endswith("_ci"):
                    agree.append({"annotators": who.replace("_", " "), "field": field, "measure": key.replace("_", " "),
                                  "value": value, "95% interval": tuple(a[f"{key}_ci"]) if f"{key}_ci" in a else ""})
            if "fleiss_kappa" in a:
                agree.append({"annotators": who.replace("_", " "), "field": field,
                              "measure": f"Fleiss kappa ({a['fleiss_items']} items × {a['fleiss_raters']} raters)",
                              "value": a["fleiss_kappa"], "95% interval": ""})
    parts.append("<h2>Agreement</h2>" + (_table(pd.DataFrame(agree)) if agree else "<p>none measurable</p>"))
    if report["pairwise_kappa"]:
        pk = pd.DataFrame(report["pairwise_kappa"]).sort_values("kappa")
        parts.append("<details><summary>Cohen's kappa of every annotator pair (counted annotators)</summary>"
                     + _table(pk) + "</details>")

    figs = []
    for field, conf in report["confusion_vs_gold"].items():
        m = pd.DataFrame(conf).fillna(0).astype(int)
        figs.append(_confusion_plot(m, f"{field}: consensus vs gold "
                                       f"(accuracy {report['consensus_gold_accuracy'][field]:.3f})"))
    if len(card):
        def bars(ax):
            x = np.arange(len(card))
            ax.bar(x - 0.2, card["gold_accuracy"].fillna(0), 0.4, label="gold accuracy")
            ax.bar(x + 0.2, card["agreement"].fillna(0), 0.4, label="agreement with consensus")
            ax.set_xticks(x, card["annotator_id"], rotation=45, ha="right", fontsize=7)
            ax.set_ylim(0, 1)
            ax.legend(fontsize=7)
            ax.set_title("Annotators (red rows below are flagged)", fontsize=9)
        figs.append(_fig(bars))
    if len(labels):
        def hist(ax):
            ax.hist(labels["confidence"].dropna(), bins=20, range=(0, 1))
            ax.set_xlabel("confidence of the aggregated label")
            ax.set_ylabel("items")
            ax.set_title("Confidence", fontsize=9)
        figs.append(_fig(hist))
    parts.append("<h2>Plots</h2><div class=figs>" + "".join(figs) + "</div>")

    parts.append("<h2>Annotators</h2>" + _table(card, bad=card["flagged"]))
    queue = labels[labels["status"] == "review"]
    parts.append(f"<h2>Items in review ({len(queue)})</h2><p>Import <code>review_queue.json</code> into the Label "
                 "Studio review project (config: <code>data_contracts/label_studio.xml</code>); feed its export back "
                 "with <code>--reviews</code>.</p>" + (_table(queue.head(500)) if len(queue) else ""))
    if report["reviews_applied"]:
        parts.append("<h2>Senior decisions applied</h2>" + _table(pd.DataFrame(report["reviews_applied"])))
    checks = report["dataset_checks"]
    for key, title in (("copy_duplicates", "Duplicate copy texts"), ("image_duplicates", "Duplicate images")):
        groups = checks.get(key)
        if groups is None:
            parts.append(f"<h2>{title}</h2><p>not checked (no dataset given)</p>")
        else:
            parts.append(f"<h2>{title} ({len(groups)} groups)</h2>"
                         + (_table(pd.DataFrame(groups)) if groups else "<p>none</p>"))
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>Labeling QA {status}</title>'
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")
