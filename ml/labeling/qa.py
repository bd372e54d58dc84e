"""Labeling QA: one core function, :func:`label_qa`, for the CLI, DVC and the Airflow task.

1. Read the annotations (CSV, Label Studio export, simulated crowd) and the gold items; reject
   unusable rows with reason codes (see :mod:`ml.labeling.annotations`).
2. Score every annotator on gold and against a first consensus; annotators below the
   thresholds are flagged and their labels do not count.
3. Aggregate the counted labels per field (Dawid–Skene by default); measure agreement
   (Krippendorff's alpha with bootstrap intervals, pairwise Cohen's kappa, Fleiss' kappa).
4. Send low-confidence, contested, single-annotation and inconsistent items to review; apply a
   senior labeler's decisions when given.
5. Run the dataset checks (near-duplicate copy, duplicate images) and the QA gate; write the
   outputs, the report and the audit records. ``labelled.parquet``, the dataset training reads,
   is written only when the gate passes.
"""
from __future__ import annotations

import json
import logging
from dataclasses import replace

import numpy as np
import pandas as pd

from ml.common import io
from ml.common.audit import AppendOnlyLog
from ml.common.config import InputError
from ml.common.progress import Progress
from ml.common.verdict import Verdict
from ml.labeling import agreement
from ml.labeling.aggregate import dawid_skene, majority_vote
from ml.labeling.annotations import (
    Taxonomy, clean_annotations, label_studio_tasks, load_taxonomy, read_annotations, read_gold,
)

log = logging.getLogger(__name__)
POSITIVE, SIGNAL = "positive_engagement", "signal_strength"  # the cross-field rule of the taxonomy
OUTPUTS = ("labels.parquet", "annotators.csv", "review_queue.json", "review_queue.csv", "qa_report.json",
           "qa_report.html", "labelled.parquet")


def resolve_dataset(dataset_uri: str | None, approved_datasets_uri: str) -> str:
    """The approved dataset version to label: the one given, else the one ``LATEST.json`` names."""
    if dataset_uri:
        return dataset_uri
    latest = io.join(approved_datasets_uri, "LATEST.json")
    if not io.exists(latest):
        raise InputError(f"no approved dataset yet ({latest} missing): run creative_data_acquisition first")
    return json.loads(io.read_text(latest))["uri"]


def check_qa(metrics: dict, thresholds: dict) -> Verdict:
    """The QA gate: reliable agreement, consensus right on gold, little left in review."""
    reasons = []
    if metrics["export_malformed"]:
        reasons.append("malformed_export: the annotations could not be read")
    if metrics["counted_annotators"] < thresholds["min_counted_annotators"]:
        reasons.append(f"counted_annotators {metrics['counted_annotators']} < {thresholds['min_counted_annotators']}")
    for field, alpha in metrics["alpha"].items():
        if not alpha >= thresholds["min_alpha"]:  # nan (undefined) fails too
            reasons.append(f"alpha_{field} {alpha:.3f} < {thresholds['min_alpha']}")
    if not metrics["consensus_gold_accuracy"]:
        reasons.append("no_gold_items: no gold item was annotated, the consensus cannot be checked")
    for field, acc in metrics["consensus_gold_accuracy"].items():
        if not acc >= thresholds["min_consensus_gold_accuracy"]:
            reasons.append(f"consensus_gold_accuracy_{field} {acc:.3f} < {thresholds['min_consensus_gold_accuracy']}")
    if metrics["items"] == 0:
        reasons.append("no_items: nothing was labelled")
    elif metrics["review_share"] > thresholds["max_review_share"]:
        reasons.append(f"review_share {metrics['review_share']:.3f} > {thresholds['max_review_share']}")
    return Verdict(passed=not reasons, reasons=reasons, metrics=metrics)


def _aggregate(rows: pd.DataFrame, column: str, classes: list[str], item_ids: list[str], annotators: list[str],
               cfg: dict):
    item_index = {k: i for i, k in enumerate(item_ids)}
    ann_index = {k: i for i, k in enumerate(annotators)}
    rows = rows[rows[column].notna()]
    it = rows["item_id"].map(item_index).to_numpy()
    an = rows["annotator_id"].map(ann_index).to_numpy()
    cl = rows[column].map({c: i for i, c in enumerate(classes)}).to_numpy()
    if cfg["method"] == "majority_vote":
        return majority_vote(it, an, cl, len(item_ids), len(classes), cfg["majority_min_agree"])
    if cfg["method"] != "dawid_skene":
        raise ValueError(f"labeling.method must be dawid_skene or majority_vote, got {cfg['method']!r}")
    return dawid_skene(it, an, cl, len(item_ids), len(annotators), len(classes), **cfg["dawid_skene"])


def reliability_matrix(rows: pd.DataFrame, column: str, classes: list[str]) -> np.ndarray:
    """Annotators × items of class codes (NaN where an annotator did not label an item)."""
    rows = rows[rows[column].notna()]
    wide = rows.pivot(index="annotator_id", columns="item_id", values=column)
    return wide.apply(lambda s: s.map({c: float(i) for i, c in enumerate(classes)})).to_numpy(dtype=float)


def _agreement(rows: pd.DataFrame, spec: dict, boot: dict, seed: int) -> dict:
    data = reliability_matrix(rows, spec["column"], spec["values"])
    out = {"alpha_nominal": agreement.krippendorff_alpha(data, "nominal")}
    out["alpha_nominal_ci"] = agreement.alpha_interval(data, "nominal", n_boot=boot["n"], ci=boot["ci"], seed=seed)
    if spec.get("ordered"):
        out["alpha_ordinal"] = agreement.krippendorff_alpha(data, "ordinal")
        out["alpha_ordinal_ci"] = agreement.alpha_interval(data, "ordinal", n_boot=boot["n"], ci=boot["ci"], seed=seed)
    counts = np.stack([(data == i).sum(axis=0) for i in range(len(spec["values"]))], axis=1)
    raters = counts.sum(axis=1)
    if raters.size and raters.max() >= 2:
        r = np.bincount(raters[raters >= 2]).argmax()
        out["fleiss_kappa"] = agreement.fleiss_kappa(counts[raters == r])
        out["fleiss_items"], out["fleiss_raters"] = int((raters == r).sum()), int(r)
    return out


def _pairwise_kappa(rows: pd.DataFrame, column: str, min_common: int) -> list[dict]:
    wide = rows[rows[column].notna()].pivot(index="item_id", columns="annotator_id", values=column)
    names = list(wide.columns)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = wide[[a, b]].dropna()
            if len(both) >= min_common:
                pairs.append({"a": a, "b": b, "items": int(len(both)),
                              "kappa": agreement.cohen_kappa(both[a].to_numpy(), both[b].to_numpy())})
    return pairs


def _confidence_col(column: str) -> str:
    return "confidence" if column == "label" else f"{column}_confidence"


def _suffix(field: str, taxonomy: Taxonomy) -> str:
    return "" if field == taxonomy.primary else f"_{field}"


def _scorecard(rows, gold, taxonomy: Taxonomy, item_ids, annotators, cfg: dict) -> pd.DataFrame:
    """Per annotator: labels given, gold accuracy and agreement with the consensus per field, flags.

    Gold is judged first. The consensus that agreement is measured against comes from the
    annotators who did not fail gold, so a crowd with many spammers cannot outvote the careful.
    """
    th = cfg["annotators"]
    card = rows.groupby("annotator_id").size().rename("n").to_frame()
    why: dict = {name: [] for name in card.index}
    for field, spec in taxonomy.categorical.items():
        col, sfx = spec["column"], _suffix(field, taxonomy)
        g = rows[rows[col].notna()].merge(gold[["item_id", col]].dropna(), on="item_id", suffixes=("", "_gold"))
        hits = (g[col] == g[f"{col}_gold"]).groupby(g["annotator_id"])
        card[f"gold_n{sfx}"] = hits.size().reindex(card.index).fillna(0).astype(int)
        card[f"gold_accuracy{sfx}"] = hits.mean().reindex(card.index)
        for name, r in card.iterrows():
            if r[f"gold_n{sfx}"] >= th["min_gold_items"] and r[f"gold_accuracy{sfx}"] < th["min_gold_accuracy"]:
                why[name].append(f"low_gold_accuracy{sfx} {r[f'gold_accuracy{sfx}']:.2f} < {th['min_gold_accuracy']}")
    trusted = rows[rows["annotator_id"].isin([n for n, w in why.items() if not w])]
    consensus, _ = _consensus(trusted, taxonomy, item_ids, annotators, cfg)
    for field, spec in taxonomy.categorical.items():
        col, sfx = spec["column"], _suffix(field, taxonomy)
        c = rows[rows[col].notna()].merge(consensus[field].rename("consensus"), left_on="item_id", right_index=True)
        c = c[c["consensus"].notna()]
        card[f"agreement{sfx}"] = (c[col] == c["consensus"]).groupby(c["annotator_id"]).mean().reindex(card.index)
        if not sfx:
            kappas = {n: agreement.cohen_kappa(d[col].to_numpy(), d["consensus"].to_numpy())
                      for n, d in c.groupby("annotator_id")}
            card["kappa"] = pd.Series(kappas, dtype=float).reindex(card.index)
        for name, r in card.iterrows():
            if r[f"agreement{sfx}"] < th["min_agreement"]:
                why[name].append(f"low_agreement{sfx} {r[f'agreement{sfx}']:.2f} < {th['min_agreement']}")
    card["flagged"] = [bool(why[n]) for n in card.index]
    card["counted"] = ~card["flagged"]
    card["reasons"] = ["; ".join(why[n] + (["too_few_labels"] if k < th["min_labels"] else []))
                       for n, k in zip(card.index, card["n"])]
    return card.reset_index()


def _consensus(rows, taxonomy, item_ids, annotators, cfg) -> tuple[dict, dict]:
    """Per field: a Series of labels (None where no label) and the Aggregate."""
    labels, aggs = {}, {}
    for field, spec in taxonomy.categorical.items():
        agg = _aggregate(rows, spec["column"], spec["values"], item_ids, annotators, cfg)
        names = np.array(spec["values"] + [None], dtype=object)
        labels[field] = pd.Series(names[agg.label], index=item_ids)
        aggs[field] = agg
    return labels, aggs


def _read_items(dataset: str | None) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    if not dataset:
        return None, None
    copy_uri, manifest_uri = io.join(dataset, "approved_copy.parquet"), io.join(dataset, "approved.parquet")
    items = io.read_parquet(copy_uri) if io.exists(copy_uri) else None
    manifest = io.read_parquet(manifest_uri) if io.exists(manifest_uri) else None
    images = manifest[manifest["kind"] == "image"] if manifest is not None else None
    return items, images


def _dataset_checks(items, images, cfg) -> dict:
    from ml.labeling.checks import duplicate_images, duplicate_texts, phash

    out: dict = {"copy_duplicates": None, "image_duplicates": None}
    if items is not None and len(items):
        texts = (items["headline"].fillna("") + " " + items["body"].fillna("")).tolist()
        out["copy_duplicates"] = duplicate_texts(items["copy_variant_id"].tolist(), texts,
                                                 threshold=cfg["text_near_duplicate_jaccard"])
    if images is not None and len(images):
        progress = Progress("label-qa: perceptual hashes", total=len(images))
        hashes = []
        for uri in images["stored_uri"]:
            hashes.append(phash(io.read_bytes(uri)))
            progress.step()
        progress.finish()
        out["image_duplicates"] = duplicate_images(images["asset_id"].tolist(), hashes,
                                                   max_distance=cfg["image_max_distance"])
    return out


def _reviews(reviews_uri, taxonomy, params, known) -> tuple[pd.DataFrame, list[dict]]:
    raw, issues = read_annotations(reviews_uri, taxonomy, params)
    rows, more = clean_annotations(raw, taxonomy, known)
    return rows.drop_duplicates("item_id", keep="last"), issues + more


def _item_table(counted, taxonomy: Taxonomy, item_ids, annotators, cfg) -> pd.DataFrame:
    """Per item: the consensus of the counted labels and its confidence per field, the number
    of counted labels, the top class's vote share and the median of each numeric field."""
    labels, aggs = _consensus(counted, taxonomy, item_ids, annotators, cfg)
    table = pd.DataFrame({"item_id": item_ids})
    for field, spec in taxonomy.categorical.items():
        table[spec["column"]] = labels[field].to_numpy()
        table[_confidence_col(spec["column"])] = aggs[field].confidence
    votes = aggs[taxonomy.primary].votes
    table["method"] = cfg["method"]
    table["n_labels"] = votes.sum(axis=1)
    table["top_share"] = votes.max(axis=1) / np.maximum(votes.sum(axis=1), 1)
    for spec in taxonomy.numeric.values():
        col = spec["column"]
        table[col] = table["item_id"].map(pd.to_numeric(counted[col], errors="coerce").groupby(counted["item_id"]).median())
    return table


def _against_gold(table, gold, taxonomy: Taxonomy) -> tuple[dict, dict]:
    """Accuracy and confusion matrix of the consensus on the gold items, per field."""
    accuracy, confusion = {}, {}
    for field, spec in taxonomy.categorical.items():
        col = spec["column"]
        g = gold[["item_id", col]].dropna().merge(table[["item_id", col]], on="item_id", suffixes=("_gold", ""))
        if len(g):
            accuracy[field] = float((g[col] == g[f"{col}_gold"]).mean())
            confusion[field] = pd.crosstab(g[f"{col}_gold"], g[col].fillna("(none)")).to_dict()
    return accuracy, confusion


def _review_reasons(r: dict, taxonomy: Taxonomy, cfg: dict) -> list[str]:
    """Why an item needs a senior labeler (empty: it does not)."""
    rcfg, pcol = cfg["review"], taxonomy.column(taxonomy.primary)
    if r["n_labels"] == 0:
        return ["no_counted_labels"]
    why = ["single_annotation"] if r["n_labels"] == 1 else []
    if r["n_labels"] >= 2 and r["top_share"] <= rcfg["disagreement_top_share"]:
        why.append("disagreement")
    if any(r[_confidence_col(s["column"])] < rcfg["min_confidence"] for s in taxonomy.categorical.values()):
        why.append("low_confidence")
    if r[pcol] is None:
        why.append("no_label")
    signal = r.get(SIGNAL)
    if r[pcol] == POSITIVE and signal is not None and signal < cfg["checks"]["signal_near_zero"]:
        why.append("inconsistent_signal")
    return why


def _set_answer(table, index, taxonomy: Taxonomy, answers: dict, method: str) -> None:
    for spec in taxonomy.categorical.values():
        value = answers.get(spec["column"])
        if isinstance(value, str):
            table.at[index, spec["column"]] = value
            table.at[index, _confidence_col(spec["column"])] = 1.0
    table.at[index, "method"] = method
    table.at[index, "review_reasons"] = []


def _apply_reviews(table, decided: pd.DataFrame, taxonomy: Taxonomy) -> list[dict]:
    """A senior labeler's decisions override the consensus; each is returned for the audit log."""
    position = {k: i for i, k in enumerate(table["item_id"])}
    columns = [s["column"] for s in taxonomy.categorical.values()]
    applied = []
    for d in decided.to_dict("records"):
        i = position[d["item_id"]]
        before, queued_for = {c: table.at[i, c] for c in columns}, list(table.at[i, "review_reasons"])
        _set_answer(table, i, taxonomy, d, "review")
        table.at[i, "reviewed_by"] = d["annotator_id"]
        applied.append({"item_id": d["item_id"], "reviewer": d["annotator_id"], "before": before,
                        "after": {c: table.at[i, c] for c in columns}, "was_queued_for": queued_for})
    return applied


def _count(reasons) -> dict:
    out: dict = {}
    for r in reasons:
        out[r] = out.get(r, 0) + 1
    return dict(sorted(out.items()))


def label_qa(annotations_uri: str, gold_uri: str, out: str, *, logical_date: str, run_id: str, audit_uri: str,
             params: dict, dataset: str | None = None, reviews: str | None = None,
             taxonomy: Taxonomy | None = None) -> dict:
    """Run labeling QA; write the outputs to ``out``; return the report (``passed`` = the gate)."""
    cfg = params["labeling"]
    taxonomy = taxonomy or load_taxonomy()
    items, images = _read_items(dataset)
    known = set(items["copy_variant_id"]) if items is not None else None

    raw, export_issues = read_annotations(annotations_uri, taxonomy, params, known)
    rows, row_issues = clean_annotations(raw, taxonomy, known)
    rejected = [i for i in row_issues if not i["reason"].endswith("_out_of_range")]
    if len(raw) != len(rows) + len(rejected):
        raise AssertionError(f"label-qa lost rows: {len(raw)} read != {len(rows)} used + {len(rejected)} rejected")
    gold = read_gold(gold_uri, taxonomy, params, known)
    if known is not None:
        export_issues += [{"reason": "unknown_gold_item", "detail": "gold item not in the approved dataset",
                           "item_id": i, "annotator_id": None} for i in gold.loc[~gold["item_id"].isin(known), "item_id"]]
        gold = gold[gold["item_id"].isin(known)]
    log.info("label-qa: %d annotation rows read, %d usable; %d gold items", len(raw), len(rows), len(gold))

    # fields nobody answered in this batch (a CSV without brand_voice …) are not judged
    absent = [f for f, spec in taxonomy.categorical.items() if f != taxonomy.primary and rows[spec["column"]].isna().all()]
    taxonomy = replace(taxonomy, categorical={f: s for f, s in taxonomy.categorical.items() if f not in absent})
    item_ids, annotators = sorted(rows["item_id"].unique()), sorted(rows["annotator_id"].unique())
    card = _scorecard(rows, gold, taxonomy, item_ids, annotators, cfg)
    counted = rows[rows["annotator_id"].isin(set(card.loc[card["counted"], "annotator_id"]))]

    table = _item_table(counted, taxonomy, item_ids, annotators, cfg)
    gold_accuracy, confusion = _against_gold(table, gold, taxonomy)  # before gold answers replace the consensus
    table["review_reasons"] = [_review_reasons(r, taxonomy, cfg) for r in table.to_dict("records")]
    table["reviewed_by"] = None
    gold_answers = gold.set_index("item_id").to_dict("index")
    for i in np.nonzero(table["item_id"].isin(gold_answers).to_numpy())[0]:
        _set_answer(table, i, taxonomy, gold_answers[table.at[i, "item_id"]], "gold")
    review_issues, applied = [], []
    if reviews:
        decided, review_issues = _reviews(reviews, taxonomy, params, set(item_ids))
        applied = _apply_reviews(table, decided, taxonomy)
    table["status"] = np.where(table["review_reasons"].map(len) > 0, "review", "accepted")

    checks = (_dataset_checks(items, images, cfg["checks"]) if items is not None
              else {"copy_duplicates": None, "image_duplicates": None})
    dup_of = {i: n for n, g in enumerate(checks["copy_duplicates"] or []) for i in g["ids"]}
    table["duplicate_group"] = table["item_id"].map(dup_of).astype("Int64")

    seed, boot = int(params["base"]["seed"]), cfg["bootstrap"]
    agreement_all = {f: _agreement(rows, s, boot, seed) for f, s in taxonomy.categorical.items()} if len(rows) else {}
    agreement_counted = ({f: _agreement(counted, s, boot, seed) for f, s in taxonomy.categorical.items()}
                         if len(counted) else {})
    for field, spec in taxonomy.numeric.items():
        numeric = counted[counted[spec["column"]].notna()]
        if len(numeric):
            data = numeric.pivot(index="annotator_id", columns="item_id", values=spec["column"]).to_numpy(dtype=float)
            agreement_counted[field] = {"alpha_interval": agreement.krippendorff_alpha(data, "interval")}

    pcol = taxonomy.column(taxonomy.primary)
    queue = table[table["status"] == "review"]
    metrics = {
        "export_malformed": any(i["reason"] == "malformed_export" for i in export_issues),
        "items": int(len(table)),
        "items_in_review": int(len(queue)),
        "review_share": float(len(queue) / len(table)) if len(table) else 0.0,
        "annotators": int(len(card)),
        "counted_annotators": int(card["counted"].sum()),
        "alpha": {f: agreement_counted[f]["alpha_nominal"] for f in taxonomy.categorical if f in agreement_counted},
        "consensus_gold_accuracy": gold_accuracy,
    }
    verdict = check_qa(metrics, cfg["gate"])
    outputs = {name: io.join(out, name) for name in OUTPUTS}
    if not (verdict.passed and items is not None):
        del outputs["labelled.parquet"]
    report = {
        "stage": "label_qa",
        "logical_date": str(logical_date)[:10],
        "run_id": run_id,
        "taxonomy_version": taxonomy.version,
        "method": cfg["method"],
        "fields_not_annotated": absent,
        "inputs": {"annotations": annotations_uri, "gold": gold_uri, "dataset": dataset, "reviews": reviews},
        "rows": {"read": int(len(raw)), "used": int(len(rows)), "rejected": len(rejected),
                 "rejected_by_reason": _count(i["reason"] for i in rejected),
                 "flags_by_reason": _count(i["reason"] for i in row_issues if i not in rejected),
                 "inconsistent_signal_rows": int(((counted[pcol] == POSITIVE)
                                                  & (counted.get(SIGNAL, np.nan) < cfg["checks"]["signal_near_zero"])).sum())},
        "export_issues_by_reason": _count(i["reason"] for i in export_issues),
        "review_issues_by_reason": _count(i["reason"] for i in review_issues),
        "issues": (export_issues + row_issues + review_issues)[:1000],
        "gold_items": int(len(gold)),
        "agreement": {"all_annotators": agreement_all, "counted_annotators": agreement_counted},
        "pairwise_kappa": _pairwise_kappa(counted, pcol, min_common=5) if len(counted) else [],
        "consensus_gold_accuracy": gold_accuracy,
        "confusion_vs_gold": confusion,
        "items_by_review_reason": _count(r for reasons in table["review_reasons"] for r in reasons),
        "reviews_applied": applied,
        "dataset_checks": checks,
        "labels_by_class": {s["column"]: table[s["column"]].value_counts().to_dict() for s in taxonomy.categorical.values()},
        "passed": verdict.passed,
        "gate": verdict.to_dict(),
        "outputs": outputs,
    }
    _write(outputs, report, table, card, items, taxonomy)
    report["audit_part"] = _audit(audit_uri, report, card, queue, applied)
    io.write_text(outputs["qa_report.json"], json.dumps(report, indent=2, sort_keys=True, default=_json) + "\n")
    return report


def _json(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.ndarray, tuple, set)):
        return list(value)
    return str(value)


def _write(outputs, report, table, card, items, taxonomy) -> None:
    from ml.labeling.report import render_html

    first = ["item_id", "label", "confidence", "method"]
    labels = table[first + [c for c in table.columns if c not in first and c != "top_share"]].copy()
    queue = labels[labels["status"] == "review"]
    tasks = label_studio_tasks(queue, items, taxonomy, model_version=f"label-qa {report['method']} {report['run_id']}")
    labels["review_reasons"] = labels["review_reasons"].map(",".join)
    io.write_parquet(outputs["labels.parquet"], labels)
    io.write_text(outputs["annotators.csv"], card.to_csv(index=False))
    io.write_text(outputs["review_queue.json"], json.dumps(tasks, indent=2, default=_json) + "\n")
    io.write_text(outputs["review_queue.csv"], labels[labels["status"] == "review"].to_csv(index=False))
    if "labelled.parquet" in outputs:
        accepted = labels[labels["status"] == "accepted"].rename(columns={"label": "engagement_label"})
        labelled = items.merge(accepted.drop(columns=["status", "review_reasons"]),
                               left_on="copy_variant_id", right_on="item_id", how="inner").drop(columns=["item_id"])
        io.write_parquet(outputs["labelled.parquet"], labelled)
    io.write_text(outputs["qa_report.html"], render_html(report, labels, card, taxonomy))


def _audit(audit_uri: str, report: dict, card: pd.DataFrame, queue: pd.DataFrame, applied: list[dict]) -> str:
    """Every QA decision of this run, appended as one part of the audit log."""
    base = {"logical_date": report["logical_date"], "run_id": report["run_id"],
            "taxonomy_version": report["taxonomy_version"], "report": report["outputs"]["qa_report.json"]}
    records = [{**base, "decision": "annotator_excluded", "subject": r["annotator_id"], "who": "label-qa",
                "why": r["reasons"]} for r in card[card["flagged"]].to_dict("records")]
    records += [{**base, "decision": "item_to_review", "subject": r["item_id"], "who": "label-qa",
                 "why": ",".join(r["review_reasons"])} for r in queue.to_dict("records")]
    records += [{**base, "decision": "review_applied", "subject": a["item_id"], "who": a["reviewer"],
                 "why": f"senior decision {a['after']} (was {a['before']})"} for a in applied]
    records.append({**base, "decision": "gate_passed" if report["passed"] else "gate_failed",
                    "subject": "labelled_dataset", "who": "label-qa",
                    "why": "; ".join(report["gate"]["reasons"]) or "all thresholds met"})
    return AppendOnlyLog(audit_uri).append_run(f"{report['logical_date']}__{report['run_id']}",
                                               json.loads(json.dumps(records, default=_json)))
