"""The ``evaluate`` stage: measure a trained adapter on its held-out test rows and run the gates.

``evaluate(train_dir, labelled_uri, out, params, champion=None)`` loads the adapter onto a
fresh base (the artifact that would ship, not the in-memory model), and measures:
- engagement macro-F1, brand-voice accuracy, calibration (ECE), per slice (industry, channel,
  audience);
- the baseline trained in the same run on the same split: TF-IDF with logistic regression;
- behaviour: invariance to product name and price, direction of an inserted off-voice phrase,
  minimum-functionality cases per industry (``data_contracts/behaviour.yaml``);
- latency: p50/p95 at batch 1 and 4 of the ``tf.function`` serving path;
- safety: forbidden claims and blocklisted marks (``data_contracts/claims.yaml``) in the copy
  the model passes as on voice.
The relative gate compares slices with the champion when its adapter is given, scored on the
same test rows (not its own old figures, which came from other data), else with the baseline. Writes ``evaluation.json``, ``evaluation.html``,
``slices.csv``; returns the report (``passed`` = every gate).
"""
from __future__ import annotations

import html
import json
import time

import numpy as np
import pandas as pd
import yaml

from ml.common import io
from ml.common.config import contracts_dir
from ml.evaluation import gates
from ml.evaluation.metrics import expected_calibration_error, macro_f1, slice_table
from ml.evaluation.perturb import perturb
from ml.training.model import ENGAGEMENT_CLASSES, texts
from ml.training.train import load_labelled, targets

SLICES = ["industry", "channel", "audience"]


def baseline_scores(train: pd.DataFrame, test: pd.DataFrame, seed: int) -> dict[str, np.ndarray]:
    """TF-IDF (word 1–2-grams of context and copy) with logistic regression, one per head."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    def joined(frame):
        context, copy = texts(frame)
        return [f"{a} || {b}" for a, b in zip(context, copy)]

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True)
    x_train, x_test = vectorizer.fit_transform(joined(train)), vectorizer.transform(joined(test))
    y = targets(train)
    engagement = LogisticRegression(max_iter=2000, random_state=seed).fit(x_train, y["engagement"])
    proba = np.zeros((len(test), len(ENGAGEMENT_CLASSES)))
    proba[:, engagement.classes_] = engagement.predict_proba(x_test)
    voice_y = y["brand_voice"][:, 0]
    if len(set(voice_y)) < 2:
        voice = np.full(len(test), float(voice_y[0]) if len(voice_y) else 0.5)
    else:
        voice = LogisticRegression(max_iter=2000, random_state=seed).fit(x_train, voice_y).predict_proba(x_test)[:, 1]
    return {"engagement": proba, "brand_voice": voice}


def measure(test: pd.DataFrame, scores: dict) -> tuple[dict, pd.DataFrame]:
    y = targets(test)
    frame = test[SLICES].assign(engagement_true=y["engagement"], engagement_pred=scores["engagement"].argmax(axis=1),
                                voice_true=y["brand_voice"][:, 0].astype(int),
                                voice_pred=(scores["brand_voice"] >= 0.5).astype(int))
    metrics = {"n": int(len(test)),
               "macro_f1": macro_f1(frame["engagement_true"], frame["engagement_pred"], len(ENGAGEMENT_CLASSES)),
               "voice_accuracy": float((frame["voice_true"] == frame["voice_pred"]).mean()),
               "ece": expected_calibration_error(scores["engagement"], frame["engagement_true"])}
    return metrics, slice_table(frame, SLICES, len(ENGAGEMENT_CLASSES))


def behaviour(scorer, test: pd.DataFrame, suite: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    base = scorer.score_frame(test)
    # invariance: another product of the same industry, another price
    swapped = perturb(test, suite["products"], rng)
    moved = scorer.score_frame(swapped)
    shifts = np.maximum(np.abs(moved["brand_voice"] - base["brand_voice"]),
                        np.abs(moved["engagement"] - base["engagement"]).max(axis=1, initial=0.0))
    # direction: an off-voice phrase lowers the voice score of on-voice copy
    on_voice = test[test["brand_voice"] == "on_voice"]
    pushed = on_voice.assign(body=[f"{rng.choice(suite['off_voice_phrases'])} {b}" for b in on_voice["body"]])
    before = base["brand_voice"][(test["brand_voice"] == "on_voice").to_numpy()]
    after = scorer.score_frame(pushed)["brand_voice"]
    direction = float(np.mean(after < before)) if len(before) else float("nan")
    # minimum functionality per industry
    mft = {}
    for industry, cases in suite["minimum_functionality"].items():
        rows = [{"brand": c["brand"], "industry": industry, "channel": c["channel"], "audience": c["audience"],
                 "headline": "", "body": c[kind], "cta": c["cta"], "kind": kind}
                for c in cases for kind in ("on_voice", "off_voice")]
        frame = pd.DataFrame(rows)
        voice = scorer.score_frame(frame)["brand_voice"]
        ok = np.where(frame["kind"] == "on_voice", voice >= 0.5, voice < 0.5)
        mft[industry] = float(ok.mean())
    return {"invariance_p95_shift": float(np.percentile(shifts, 95)) if len(shifts) else 0.0,
            "invariance_max_shift": float(shifts.max(initial=0.0)), "direction_pass_rate": direction,
            "direction_cases": int(len(before)), "mft_pass_rate": mft}


def latency(scorer, test: pd.DataFrame, calls: int) -> dict:
    """p50/p95 in ms of the serving path (masking and tokenising included) at batch 1 and 4."""
    context, copy = scorer.texts(test)
    out = {}
    for batch in (1, 4):
        pairs = [([context[i % len(copy)]] * batch, [copy[i % len(copy)]] * batch) for i in range(calls)]
        for c, x in pairs[:3]:  # warm-up: tracing and first calls
            scorer.score(c, x)
        times = []
        for c, x in pairs:
            t = time.perf_counter()
            scorer.score(c, x)
            times.append((time.perf_counter() - t) * 1000)
        out[batch] = {"p50": float(np.percentile(times, 50)), "p95": float(np.percentile(times, 95))}
    return out


def evaluate(train_dir: str, labelled_uri: str, out: str, params: dict, champion: str | None = None,
             champion_name: str = "the champion") -> dict:
    """``champion``: the current champion's adapter file; the relative gate's reference."""
    from ml.training.model import Scorer

    th = params["evaluation"]
    seed = int(params["base"]["seed"])
    frame = load_labelled(labelled_uri)
    split = io.read_parquet(io.join(train_dir, "split.parquet"))
    frame = frame.merge(split, on="copy_variant_id", how="inner")
    train, test = frame[frame["split"] == "train"], frame[frame["split"] == "test"].reset_index(drop=True)
    scorer = Scorer.from_adapter(io.join(train_dir, "adapter.npz"))

    scores = scorer.score_frame(test)
    metrics, slices = measure(test, scores)
    base_metrics, base_slices = measure(test, baseline_scores(train, test, seed))
    if champion:
        _, reference = measure(test, Scorer.from_adapter(champion).score_frame(test))
        reference_name = champion_name
    else:
        reference, reference_name = base_slices, "the TF-IDF baseline"
    suite = yaml.safe_load((contracts_dir() / "behaviour.yaml").read_text())
    rules = yaml.safe_load((contracts_dir() / "claims.yaml").read_text())
    behaved = behaviour(scorer, test, suite, seed)
    timing = latency(scorer, test, int(th["latency_calls"]))
    passed_copy = [(b, t) for b, t, p in zip(test["brand"], scorer.texts(test)[1], scores["brand_voice"]) if p >= 0.5]
    findings = gates.find_claims(passed_copy, rules)

    verdicts = {
        "absolute": gates.check_absolute(metrics, slices, th),
        "relative": gates.check_relative(slices, reference, th, reference_name),
        "behaviour": gates.check_behaviour(behaved, th),
        "latency": gates.check_latency({b: t["p95"] for b, t in timing.items()}, th),
        "safety": gates.check_safety(findings, th),
    }
    passed = all(v.passed for v in verdicts.values())
    outputs = {"json": io.join(out, "evaluation.json"), "html": io.join(out, "evaluation.html"),
               "slices": io.join(out, "slices.csv")}
    report = {"stage": "evaluate", "train_dir": train_dir, "labelled": labelled_uri, "passed": passed,
              "gates": {k: v.to_dict() for k, v in verdicts.items()},
              "reasons": [f"{k}: {r}" for k, v in verdicts.items() for r in v.reasons],
              "metrics": metrics, "baseline": base_metrics, "beats_baseline": {
                  "macro_f1": metrics["macro_f1"] > base_metrics["macro_f1"],
                  "voice_accuracy": metrics["voice_accuracy"] > base_metrics["voice_accuracy"]},
              "reference": reference_name, "behaviour": behaved, "latency_ms": timing,
              "safety": {"rules_version": rules.get("version"), "findings": findings},
              "behaviour_suite_version": suite.get("version"), "outputs": outputs}
    io.write_text(outputs["slices"], slices.to_csv(index=False))
    io.write_text(outputs["json"], json.dumps(report, indent=2, sort_keys=True, default=float) + "\n")
    io.write_text(outputs["html"], render_html(report, slices, base_slices))
    return report


def render_html(report: dict, slices: pd.DataFrame, base_slices: pd.DataFrame) -> str:
    status = "PASSED" if report["passed"] else "FAILED"
    gate_rows = "".join(
        f"<tr class={'ok' if v['passed'] else 'bad'}><td>{k}</td><td>{'passed' if v['passed'] else 'FAILED'}</td>"
        f"<td>{'<br>'.join(html.escape(r) for r in v['reasons']) or '–'}</td></tr>" for k, v in report["gates"].items())
    both = slices.merge(base_slices, on=["slice", "value", "n"], suffixes=("", "_baseline"))
    slice_rows = "".join("<tr>" + "".join(f"<td>{html.escape(f'{v:.3f}' if isinstance(v, float) else str(v))}</td>"
                                          for v in r) + "</tr>" for r in both.itertuples(index=False))
    m, b = report["metrics"], report["baseline"]
    lat = report["latency_ms"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Evaluation {status}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1.5em}}
td,th{{border:1px solid #ccc;padding:3px 8px}}.bad{{background:#fde2e2}}</style></head><body>
<h1>Copy scorer evaluation: {status}</h1>
<table><tr><th>gate</th><th>verdict</th><th>reasons</th></tr>{gate_rows}</table>
<h2>Test split ({m['n']} rows)</h2>
<table><tr><th></th><th>macro-F1</th><th>brand-voice accuracy</th><th>ECE</th></tr>
<tr><td>model</td><td>{m['macro_f1']:.3f}</td><td>{m['voice_accuracy']:.3f}</td><td>{m['ece']:.3f}</td></tr>
<tr><td>TF-IDF baseline</td><td>{b['macro_f1']:.3f}</td><td>{b['voice_accuracy']:.3f}</td><td>{b['ece']:.3f}</td></tr></table>
<h2>Slices</h2><table><tr>{''.join(f'<th>{c}</th>' for c in both.columns)}</tr>{slice_rows}</table>
<h2>Behaviour</h2><p>invariance shift p95 {report['behaviour']['invariance_p95_shift']:.3f}
(max {report['behaviour']['invariance_max_shift']:.3f});
direction pass rate {report['behaviour']['direction_pass_rate']:.3f} of {report['behaviour']['direction_cases']};
minimum functionality {html.escape(json.dumps(report['behaviour']['mft_pass_rate']))}</p>
<h2>Latency (tf.function, ms)</h2><p>batch 1: p50 {lat[1]['p50']:.1f}, p95 {lat[1]['p95']:.1f};
batch 4: p50 {lat[4]['p50']:.1f}, p95 {lat[4]['p95']:.1f}</p>
<h2>Safety</h2><p>{len(report['safety']['findings'])} findings (rules {html.escape(str(report['safety']['rules_version']))})</p>
</body></html>
"""
