"""Annotations in and out: the taxonomy, the CSV and Label Studio formats, and row checks.

Inputs are a CSV (``item_id, annotator_id, label`` plus optional ``brand_voice`` and
``signal_strength``), a Label Studio JSON export, or ``synthetic://?seed=N&n=M[&crowd=good|bad]``
(the simulated crowd over the synthetic copy). Nothing here raises on bad rows: every row that
cannot be used is returned with a reason code, so the QA report can count it.

Reason codes: ``malformed_export`` (the file cannot be parsed at all), ``malformed_task`` (one
Label Studio task or annotation without the expected structure), ``cancelled_annotation``,
``missing_field``, ``unknown_item``, ``label_outside_taxonomy``, ``duplicate_annotation`` (the
same annotator labelled the same item again with the same answer), ``conflicting_duplicate``
(… with another answer: the first one is kept), and the row flag ``<field>_out_of_range`` (``signal_strength_out_of_range``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import yaml

from ml.common import io
from ml.common.config import InputError, contracts_dir

BASE_COLUMNS = ["item_id", "annotator_id"]


@dataclass(frozen=True)
class Taxonomy:
    version: str
    categorical: dict   # field name -> {"column", "values", "primary"}
    numeric: dict       # field name -> {"column", "min", "max"}
    from_names: dict    # Label Studio control name -> column
    to_name: str

    @property
    def primary(self) -> str:
        return next((f for f, spec in self.categorical.items() if spec.get("primary")), next(iter(self.categorical)))

    @property
    def columns(self) -> list[str]:
        return [s["column"] for s in self.categorical.values()] + [s["column"] for s in self.numeric.values()]

    def column(self, field: str) -> str:
        return {**self.categorical, **self.numeric}[field]["column"]


def load_taxonomy(path=None) -> Taxonomy:
    with open(path or contracts_dir() / "taxonomy.yaml", encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    fields = raw["fields"]
    ls = raw.get("label_studio", {})
    return Taxonomy(
        version=str(raw["version"]),
        categorical={k: v for k, v in fields.items() if v["kind"] == "categorical"},
        numeric={k: v for k, v in fields.items() if v["kind"] == "number"},
        from_names=dict(ls.get("from_names", {})),
        to_name=ls.get("to_name", "text"),
    )


def _issue(reason: str, detail: str, **where) -> dict:
    return {"reason": reason, "detail": detail, **{k: (None if v is None else str(v)) for k, v in where.items()}}


def _annotator(completed_by) -> str | None:
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("email") or completed_by.get("id")
    return None if completed_by is None else str(completed_by)


def parse_label_studio(text: str, taxonomy: Taxonomy, source: str = "") -> tuple[pd.DataFrame, list[dict]]:
    """Rows of a Label Studio JSON export (a list of tasks with ``annotations[].result[]``)."""
    cols = BASE_COLUMNS + taxonomy.columns
    try:
        tasks = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return pd.DataFrame(columns=cols), [_issue("malformed_export", f"{source}: not JSON ({exc})")]
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        return pd.DataFrame(columns=cols), [_issue("malformed_export", f"{source}: expected a list of tasks")]
    rows, issues = [], []
    for t_index, task in enumerate(tasks):
        data = task.get("data") if isinstance(task, dict) else None
        annotations = task.get("annotations") if isinstance(task, dict) else None
        if not isinstance(data, dict) or not isinstance(annotations, list):
            issues.append(_issue("malformed_task", f"task #{t_index} has no data/annotations list"))
            continue
        item = data.get("item_id", task.get("id"))
        for annotation in annotations:
            if not isinstance(annotation, dict) or not isinstance(annotation.get("result"), list):
                issues.append(_issue("malformed_task", f"task #{t_index}: annotation without a result list",
                                     item_id=item))
                continue
            who = _annotator(annotation.get("completed_by"))
            if annotation.get("was_cancelled"):
                issues.append(_issue("cancelled_annotation", "skipped in Label Studio", item_id=item, annotator_id=who))
                continue
            row = {"item_id": item, "annotator_id": who}
            for result in annotation["result"]:
                column = taxonomy.from_names.get(result.get("from_name")) if isinstance(result, dict) else None
                value = result.get("value") if column else None
                if not isinstance(value, dict):
                    continue
                if "choices" in value and isinstance(value["choices"], list) and value["choices"]:
                    row[column] = value["choices"][0]
                elif "number" in value:
                    row[column] = value["number"]
            rows.append(row)
    return pd.DataFrame(rows, columns=cols), issues


def _synthetic(uri: str, params: dict, items: set | None = None):
    """The simulated crowd of ``uri``'s synthetic data; it labels ``items`` when given (the
    approved dataset sent to the labeling vendor), else every synthetic copy variant."""
    from ml.data.crowd import simulate_crowd
    from ml.data.sources import open_source

    query = {k: v[-1] for k, v in parse_qs(urlparse(uri).query).items()}
    truth = open_source(uri, params).data.truth
    if items is not None:
        truth = {k: v for k, v in truth.items() if k in items}
    return simulate_crowd(truth, seed=int(query.get("seed", params["base"]["seed"])),
                          crowd=query.get("crowd", "good"),
                          problem_share=float(query.get("problem_share", params["labeling"]["synthetic_problem_share"])))


def _read_csv(uri: str) -> pd.DataFrame:
    from io import BytesIO

    return pd.read_csv(BytesIO(io.read_bytes(uri)), dtype=str, keep_default_na=False, na_values=[""])


def read_annotations(uri: str, taxonomy: Taxonomy, params: dict, items: set | None = None
                     ) -> tuple[pd.DataFrame, list[dict]]:
    """Annotation rows (``item_id, annotator_id`` and the taxonomy's columns) and parse issues."""
    cols = BASE_COLUMNS + taxonomy.columns
    if uri.startswith("synthetic://"):
        frame = _synthetic(uri, params, items).annotations
        return frame.reindex(columns=cols), []
    if not io.exists(uri):
        raise InputError(f"annotations not found: {uri}")
    if uri.lower().endswith(".json"):
        return parse_label_studio(io.read_bytes(uri).decode("utf-8", errors="replace"), taxonomy, uri)
    if uri.lower().endswith(".csv"):
        try:
            frame = _read_csv(uri)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            return pd.DataFrame(columns=cols), [_issue("malformed_export", f"{uri}: {exc}")]
        missing = [c for c in ("item_id", "annotator_id", taxonomy.column(taxonomy.primary)) if c not in frame.columns]
        if missing:
            return pd.DataFrame(columns=cols), [_issue("malformed_export", f"{uri}: missing columns {missing}")]
        return frame.reindex(columns=cols), []
    raise InputError(f"annotations must be .csv, Label Studio .json or synthetic://, got {uri!r}")


def read_gold(uri: str, taxonomy: Taxonomy, params: dict, items: set | None = None) -> pd.DataFrame:
    """Gold items: ``item_id`` and the known value of one or more categorical fields."""
    cols = ["item_id"] + [s["column"] for s in taxonomy.categorical.values()]
    if uri.startswith("synthetic://"):
        return _synthetic(uri, params, items).gold.reindex(columns=cols)
    if not io.exists(uri):
        raise InputError(f"gold items not found: {uri}")
    frame = parse_label_studio(io.read_text(uri), taxonomy, uri)[0] if uri.lower().endswith(".json") else _read_csv(uri)
    if "item_id" not in frame.columns:
        raise InputError(f"gold file {uri} has no item_id column")
    return frame.reindex(columns=cols).drop_duplicates("item_id", keep="first").reset_index(drop=True)


def clean_annotations(raw: pd.DataFrame, taxonomy: Taxonomy, known_items: set | None
                      ) -> tuple[pd.DataFrame, list[dict]]:
    """Split rows into usable ones and rejected ones: (usable rows, issues with reasons).

    A numeric value outside its range is blanked (the row's labels still count) and reported
    as ``<field>_out_of_range``.
    """
    issues: list[dict] = []
    frame = raw.copy().reset_index(drop=True)
    if frame.empty:
        return frame, issues
    primary = taxonomy.column(taxonomy.primary)
    for c in BASE_COLUMNS + [primary]:
        frame[c] = frame[c].where(frame[c].notna(), None)
    ok = np.ones(len(frame), dtype=bool)

    def reject(mask, reason, detail):
        for r in frame[mask & ok].to_dict("records"):
            issues.append(_issue(reason, detail(r), item_id=r["item_id"], annotator_id=r["annotator_id"]))
        ok[mask] = False

    blank = frame[BASE_COLUMNS + [primary]].isna().any(axis=1).to_numpy()
    reject(blank, "missing_field", lambda r: f"needs item_id, annotator_id and {primary}")
    frame["item_id"] = frame["item_id"].astype(str)
    frame["annotator_id"] = frame["annotator_id"].astype(str)
    if known_items is not None:
        reject(~frame["item_id"].isin(known_items).to_numpy(), "unknown_item",
               lambda r: f"item {r['item_id']} is not in the approved dataset")
    for field, spec in taxonomy.categorical.items():
        col = spec["column"]
        values = frame[col]
        outside = (values.notna() & ~values.isin(spec["values"])).to_numpy()
        reject(outside, "label_outside_taxonomy",
               lambda r, c=col, f=field: f"{f}={r[c]!r} is not one of {taxonomy.categorical[f]['values']}")
    key = frame["item_id"] + "\x1f" + frame["annotator_id"]
    live = pd.Series(ok, index=frame.index)
    dup = (key.where(live).duplicated(keep="first") & live).to_numpy()
    answer = frame[[s["column"] for s in taxonomy.categorical.values()]].astype(str).agg("|".join, axis=1)
    same = (answer == answer.where(live).groupby(key).transform("first")).to_numpy()
    reject(dup & same, "duplicate_annotation", lambda r: "the same annotator labelled this item again")
    reject(dup & ~same, "conflicting_duplicate",
           lambda r: "the same annotator gave this item another answer; the first is kept")
    usable = frame[ok].reset_index(drop=True)
    for field, spec in taxonomy.numeric.items():
        col = spec["column"]
        num = pd.to_numeric(usable[col], errors="coerce")
        bad = (num.isna() & usable[col].notna()) | (num < spec["min"]) | (num > spec["max"])
        for r in usable[bad].to_dict("records"):
            issues.append(_issue(f"{field}_out_of_range", f"{field}={r[col]!r} outside [{spec['min']}, {spec['max']}]; "
                                 "the value is ignored, the labels count", item_id=r["item_id"],
                                 annotator_id=r["annotator_id"]))
        usable[col] = num.where(~bad)
    return usable, issues


def _ls_result(row: dict, taxonomy: Taxonomy) -> list[dict]:
    """Label Studio ``result`` entries for a row's answers, under the labeling config's control names."""
    names = {col: name for name, col in reversed(list(taxonomy.from_names.items()))}
    result = []
    for spec in taxonomy.categorical.values():
        value = row.get(spec["column"])
        if isinstance(value, str):
            result.append({"from_name": names.get(spec["column"], spec["column"]), "to_name": taxonomy.to_name,
                           "type": "choices", "value": {"choices": [value]}})
    for spec in taxonomy.numeric.values():
        value = row.get(spec["column"])
        if value is not None and not pd.isna(value):
            result.append({"from_name": names.get(spec["column"], spec["column"]), "to_name": taxonomy.to_name,
                           "type": "number", "value": {"number": float(value)}})
    return result


def label_studio_export(annotations: pd.DataFrame, taxonomy: Taxonomy | None = None) -> list[dict]:
    """Annotation rows as a Label Studio JSON export: one task per item, one annotation per row."""
    taxonomy = taxonomy or load_taxonomy()
    tasks = []
    for t_id, (item, group) in enumerate(annotations.groupby("item_id", sort=True), start=1):
        tasks.append({"id": t_id, "data": {"item_id": item}, "annotations": [
            {"id": t_id * 1000 + k, "completed_by": row["annotator_id"], "was_cancelled": False,
             "result": _ls_result(row, taxonomy)}
            for k, row in enumerate(group.to_dict("records"))]})
    return tasks


def label_studio_tasks(queue: pd.DataFrame, items: pd.DataFrame | None, taxonomy: Taxonomy,
                       model_version: str) -> list[dict]:
    """The review queue in Label Studio's import format: one task per item, with the current
    aggregated answer as a pre-annotation (``predictions``) the senior labeler confirms or fixes."""
    info = items.set_index("copy_variant_id") if items is not None and len(items) else None
    tasks = []
    for q in queue.to_dict("records"):
        data = {"item_id": q["item_id"], "reasons": ", ".join(q["review_reasons"])}
        if info is not None and q["item_id"] in info.index:
            row = info.loc[q["item_id"]]
            data.update({"text": f"{row['headline']}\n{row['body']}\n[{row['cta']}]",
                         **{k: row[k] for k in ("brand", "industry", "channel", "audience")}})
        tasks.append({"data": data, "predictions": [{"model_version": model_version, "score": float(q["confidence"]),
                                                     "result": _ls_result(q, taxonomy)}]})
    return tasks
