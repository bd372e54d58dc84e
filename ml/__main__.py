"""``python -m ml <command>``: one command per stage, each a thin call of the stage's core
function (the same one the Airflow task calls). Each prints a one-line summary, writes its
JSON report next to its outputs, and exits 1 when its gate fails (the report still written).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date

from ml.common.config import InputError, load_params


def _date(args, params) -> str:
    return args.logical_date or str(params["run"]["logical_date"])


def cmd_synth(args, params) -> int:
    from ml.data.synthetic import generate

    cfg = params["synthetic"]
    data = generate(args.seed if args.seed is not None else params["base"]["seed"], args.n or cfg["n"],
                    image_size=cfg["image_size"], copy_share=cfg["copy_share"],
                    problem_share=cfg["problem_share"], logical_date=cfg["reference_date"])
    data.write_to(args.out)
    print(f"synth: wrote {len(data.files)} files ({len(data.truth)} copy variants) to {args.out}")
    if args.labels:
        from pathlib import Path

        from ml.data.crowd import simulate_crowd
        from ml.labeling.annotations import label_studio_export

        crowd = simulate_crowd(data.truth, seed=args.seed if args.seed is not None else params["base"]["seed"],
                               crowd=args.crowd, problem_share=params["labeling"]["synthetic_problem_share"])
        folder = Path(args.out) / "labels"
        folder.mkdir(parents=True, exist_ok=True)
        crowd.annotations.to_csv(folder / "annotations.csv", index=False)
        crowd.gold.to_csv(folder / "gold.csv", index=False)
        (folder / "annotations.json").write_text(json.dumps(label_studio_export(crowd.annotations), indent=1))
        (folder / "crowd_profiles.json").write_text(json.dumps(crowd.profiles, indent=2, sort_keys=True))
        print(f"synth: {len(crowd.annotations)} annotations by {len(crowd.profiles)} simulated annotators, "
              f"{len(crowd.gold)} gold items -> {folder}/annotations.csv (and .json in Label Studio's export format)")
    return 0


def cmd_acquire(args, params) -> int:
    from ml.data.acquire import acquire, default_sources

    r = acquire(args.source or default_sources(params), args.out, logical_date=_date(args, params), params=params)
    reasons = ", ".join(f"{k} {v}" for k, v in r["quarantined_by_reason"].items()) or "none"
    print(f"acquire: seen {r['seen']} = accepted {r['accepted']} + quarantined {r['quarantined']} "
          f"({reasons}) -> {args.out}")
    return 0 if r["passed"] else 1


def cmd_licence_check(args, params) -> int:
    from ml.licensing.gate import licence_check

    date = _date(args, params)
    r = licence_check(args.manifest, args.out, logical_date=date, run_id=args.run_id or f"cli__{date}",
                      ledger_uri=args.ledger or params["licensing"]["ledger_uri"], params=params)
    reasons = ", ".join(f"{k} {v}" for k, v in r["rejected_by_reason"].items()) or "none"
    print(f"licence-check: {'PASSED' if r['passed'] else 'FAILED'} approved {r['approved']} of {r['checked']}, "
          f"rejected {r['rejected']} ({reasons}); policy {r['policy_version']} -> {args.out}")
    return 0 if r["passed"] else 1


def cmd_validate(args, params) -> int:
    from ml.contracts import validate

    r = validate(args.table, args.suite, args.out)
    failed = ", ".join(r["failed_expectations"]) or "none failed"
    s = r["statistics"]
    print(f"validate {args.suite}: {'PASSED' if r['passed'] else 'FAILED'} "
          f"{s['successful_expectations']}/{s['evaluated_expectations']} expectations ({failed}) "
          f"-> {r['outputs']['html']}")
    return 0 if r["passed"] else 1


def cmd_label_qa(args, params) -> int:
    from ml.labeling.qa import label_qa

    date = _date(args, params)
    r = label_qa(args.annotations, args.gold, args.out, logical_date=date, run_id=args.run_id or f"cli__{date}",
                 audit_uri=args.audit or params["labeling"]["audit_uri"], params=params, dataset=args.dataset,
                 reviews=args.reviews)
    m = r["gate"]["metrics"]
    alphas = ", ".join(f"{k} {v:.3f}" for k, v in m["alpha"].items()) or "none"
    rejected = ", ".join(f"{k} {v}" for k, v in r["rows"]["rejected_by_reason"].items()) or "none"
    print(f"label-qa: {'PASSED' if r['passed'] else 'FAILED'} {m['items']} items, {m['items_in_review']} in review "
          f"({m['review_share']:.1%}); alpha {alphas}; annotators counted {m['counted_annotators']}/{m['annotators']}; "
          f"rows {r['rows']['read']} = {r['rows']['used']} used + {r['rows']['rejected']} rejected ({rejected})"
          + ("" if r["passed"] else f"; gate: {'; '.join(r['gate']['reasons'])}") + f" -> {r['outputs']['qa_report.html']}")
    return 0 if r["passed"] else 1


def cmd_train(args, params) -> int:
    from ml.training.train import train

    r = train(args.labelled, args.out, params)
    f = r["final"]
    print(f"train: {r['rows']['train']} rows × {r['hyperparameters']['epochs']} epochs in {r['train_seconds']:.0f} s "
          f"({r['examples_per_second']:.1f} examples/s); trainable {r['trainable_params']:,} of {r['total_params']:,}; "
          f"val engagement accuracy {f.get('val_engagement_accuracy', float('nan')):.3f}, "
          f"voice accuracy {f.get('val_brand_voice_accuracy', float('nan')):.3f} -> {r['outputs']['adapter']}")
    return 0


def cmd_evaluate(args, params) -> int:
    from ml.evaluation.evaluate import evaluate

    champion, name = args.champion, "the champion"
    if champion == "registry":
        from ml.registry.tracking import champion_adapter

        champion, name = champion_adapter() or (None, "")
    r = evaluate(args.train, args.labelled, args.out, params, champion=champion, champion_name=name)
    m, b = r["metrics"], r["baseline"]
    print(f"evaluate: {'PASSED' if r['passed'] else 'FAILED'} macro-F1 {m['macro_f1']:.3f} (baseline {b['macro_f1']:.3f}), "
          f"voice accuracy {m['voice_accuracy']:.3f} (baseline {b['voice_accuracy']:.3f}), ECE {m['ece']:.3f}, "
          f"p95 batch 1 {r['latency_ms'][1]['p95']:.1f} ms"
          + ("" if r["passed"] else f"; {'; '.join(r['reasons'][:5])}") + f" -> {r['outputs']['html']}")
    return 0 if r["passed"] else 1


def cmd_register(args, params) -> int:
    from ml.registry.tracking import MODEL_NAME, file_digest, track_and_register

    version = args.dataset_version or file_digest(args.labelled, "md5")  # DVC's hash of the file
    r = track_and_register(args.train, args.evaluation, labelled_uri=args.labelled, dataset_version=version, manifest_uri=args.manifest,
                           params=params, run_name=args.run_name)
    if r["registered"]:
        print(f"register: run {r['run_id']} -> {MODEL_NAME} version {r['version']} alias {r['alias']}")
        return 0
    print(f"register: run {r['run_id']} tracked; the evaluation gate failed, nothing registered")
    return 1


def _release_call(command: str, fn, *args, **kwargs) -> int:
    from ml.registry.release import ReleaseError

    try:
        r = fn(*args, **kwargs)
    except ReleaseError as exc:  # refused by the release rules: a gate, not a usage error
        print(f"{command}: refused: {exc}", file=sys.stderr)
        return 1
    aliases = ", ".join(f"{a}=v{v}" for a, v in sorted(r["state"]["aliases"].items())) or "none"
    what = r["entry"]["action"] if r["changed"] else "nothing to change"
    print(f"{command}: {what}; aliases {aliases}; canary weight {r['state']['canary_weight']:.0%}")
    return 0


def cmd_promote(args, params) -> int:
    from ml.registry import release

    rel = params["release"]
    actor = release.Actor(args.approved_by, args.reason)
    audit, ledger = args.audit or rel["audit_uri"], args.ledger or params["licensing"]["ledger_uri"]
    if args.to == "champion":
        return _release_call("promote", release.promote_canary, actor, audit_uri=audit, ledger_uri=ledger)
    if "canary" in release.state()["aliases"] and args.weight is not None and args.version is None:
        return _release_call("promote", release.set_weight, actor, args.weight, audit_uri=audit)
    return _release_call("promote", release.start_canary, actor, audit_uri=audit, ledger_uri=ledger,
                         weight=args.weight if args.weight is not None else rel["canary"]["weight"],
                         version=args.version)


def cmd_rollback(args, params) -> int:
    from ml.registry import release

    return _release_call("rollback", release.rollback, release.Actor(args.by, args.reason),
                         audit_uri=args.audit or params["release"]["audit_uri"])


def cmd_status(args, params) -> int:
    from ml.registry import release

    now = release.state()
    print(f"model {now['model']}")
    for alias in release.ALIASES:
        if alias in now["aliases"]:
            extra = f"  ({now['canary_weight']:.0%} of traffic)" if alias == "canary" else ""
            print(f"  {alias:<10} version {now['aliases'][alias]}{extra}")
    if not now["aliases"]:
        print("  no aliases (nothing registered or promoted yet)")
    entries = release.history(args.audit or params["release"]["audit_uri"], args.limit)
    print(f"latest {len(entries)} audit entries:")
    for e in entries:
        moves = "; ".join(f"{a} {m['from'] or '-'} -> {m['to'] or '-'}" for a, m in e["aliases"].items())
        weight = e.get("canary_weight")
        if weight:
            moves += ("; " if moves else "") + f"weight {weight['from']:.0%} -> {weight['to']:.0%}"
        print(f"  {e['at']}  {e['action']:<14} {e['who']}: {moves}  ({e['reason']})")
    if args.json:
        print(json.dumps({**now, "audit": entries}, indent=2))
    return 0


def cmd_serve(args, params) -> int:
    import uvicorn

    from ml.serving.app import Settings, create_app

    settings = Settings.from_params(params, log_uri=args.log_uri)
    args.port = args.port or int(params["serving"]["port"])
    print(f"serve: http://{args.host}:{args.port} answers with the champion and canary of the registry; "
          f"prediction log {settings.log_uri}; admin endpoints "
          f"{'on' if settings.admin_token else 'off (SCORING_ADMIN_TOKEN not set)'}", flush=True)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning", access_log=False,
                loop="uvloop", http="httptools", workers=1)
    return 0


def cmd_drift(args, params) -> int:
    from ml.common.io import read_table
    from ml.monitoring.drift import drift

    r = drift(read_table(args.reference), read_table(args.current), args.out, params)
    target = ", ".join(f"{c} {'DRIFT' if t['drift'] else 'stable'}" for c, t in r["target"].items()) or "no outcomes"
    print(f"drift: {'DRIFT' if r['dataset_drift'] else 'no drift'}: {len(r['drifted_features'])} of "
          f"{len(r['features'])} features drifted ({', '.join(r['drifted_features']) or 'none'}); target: {target}; "
          f"rows {r['rows']['reference']} reference, {r['rows']['current']} current -> {r['outputs']['html']}")
    return 1 if r["dataset_drift"] or r["target_drift"] else 0


def cmd_licence_sweep(args, params) -> int:
    from ml.licensing.sweep import licence_sweep

    on = args.on or date.today().isoformat()
    r = licence_sweep(args.datasets, on=on, run_id=args.run_id or f"cli-{on}", out=args.out,
                      ledger_uri=args.ledger or params["licensing"]["ledger_uri"], params=params,
                      withdrawn_uri=args.withdrawn)
    models = ", ".join(f"v{m['version']}{'(' + '/'.join(m['aliases']) + ')' if m['aliases'] else ''}"
                       for m in r["model_versions"]) or "none"
    reasons = ", ".join(f"{k} {v}" for k, v in r["refused_by_reason"].items())
    print(f"licence-sweep {r['on']}: refused {r['refused']} of {r['checked']} assets{f' ({reasons})' if reasons else ''}; "
          f"dataset versions affected: {sum(len(v) for v in r['dataset_versions'].values())}; model versions "
          f"blocked: {models}; new approved dataset: {r['new_dataset_version'] or 'none'}"
          + ("; THE CHAMPION WAS TRAINED ON REFUSED ASSETS" if r["champion_affected"] else "")
          + f" -> {r['outputs']['html']}")
    return 1 if r["champion_affected"] and params["licensing"]["sweep"]["fail_on_champion"] else 0


def cmd_publish(args, params) -> int:
    from ml.data.publish import publish_dataset, publish_labelled

    date = _date(args, params)
    run_id = args.run_id or f"cli__{date}"
    if args.labelled:
        r = publish_labelled(args.labelled, args.datasets, logical_date=date, run_id=run_id)
        what = f"labelled dataset {r['version']} ({r['items']} items)"
    else:
        r = publish_dataset(args.approved, args.datasets, logical_date=date, run_id=run_id)
        what = f"dataset {r['version']} ({r['assets']} assets)"
    print(f"publish: {what} {'new' if r['changed'] else 'unchanged'} -> {r['uri']}")
    return 0


def cmd_ledger(args, params) -> int:
    from ml.licensing.gate import asset_history

    history = asset_history(args.ledger or params["licensing"]["ledger_uri"], args.asset)
    for d in history:
        why = ", ".join(d["reasons"]) or "all rules met"
        print(f"{d['logical_date']} {d['run_id']} {d['asset_id'][:16]} {d['licence']}: {d['decision']} "
              f"({why}) policy {d['policy_version']}")
    if not history:
        print(f"ledger: no decision about an asset id starting {args.asset!r}")
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ml", description=__doc__.split("\n\n")[0])
    p.add_argument("--params", help="params.yaml to use (default: the repository's, or $CREATIVE_PARAMS)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write the seeded synthetic source to a folder")
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int)
    s.add_argument("--n", type=int)
    s.add_argument("--labels", action="store_true",
                   help="also write a simulated annotator crowd's labels (CSV, Label Studio JSON) and gold items")
    s.add_argument("--crowd", default="good", choices=["good", "bad"], help="the simulated crowd (with --labels)")
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("acquire", help="acquire sources into a manifest, quarantining bad input")
    s.add_argument("--source", action="append",
                   help="folder, s3://bucket/prefix or synthetic://?seed=N&n=M (repeatable; "
                        "default: the synthetic source sized by params.yaml)")
    s.add_argument("--out", required=True)
    s.add_argument("--logical-date", help="the run's date (default: run.logical_date in params.yaml)")
    s.set_defaults(func=cmd_acquire)

    s = sub.add_parser("licence-check", help="licence and consent gate over a manifest")
    s.add_argument("--manifest", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--logical-date")
    s.add_argument("--run-id", help="id recorded in the ledger (default cli__<date>)")
    s.add_argument("--ledger", help="ledger location (default licensing.ledger_uri)")
    s.set_defaults(func=cmd_licence_check)

    s = sub.add_parser("validate", help="run a data contract suite on a Parquet table")
    s.add_argument("--table", required=True)
    s.add_argument("--suite", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("label-qa", help="labeling QA: agreement, gold checks, aggregation, review queue, QA gate")
    s.add_argument("--annotations", required=True,
                   help="annotations CSV (item_id, annotator_id, label[, brand_voice, signal_strength]), a Label "
                        "Studio JSON export, or synthetic://?seed=N&n=M[&crowd=good|bad]")
    s.add_argument("--gold", required=True, help="gold items CSV (item_id, label[, brand_voice]) or synthetic://…")
    s.add_argument("--out", required=True)
    s.add_argument("--dataset", help="approved dataset folder (approved_copy.parquet, approved.parquet): unknown "
                                     "item ids are rejected, duplicates checked, labelled.parquet joined")
    s.add_argument("--reviews", help="a senior labeler's decisions: Label Studio export of the review project, or CSV")
    s.add_argument("--logical-date")
    s.add_argument("--run-id", help="id recorded in the audit log (default cli__<date>)")
    s.add_argument("--audit", help="audit log location (default labeling.audit_uri)")
    s.set_defaults(func=cmd_label_qa)

    s = sub.add_parser("train", help="LoRA fine-tuning of the copy scorer on a labelled dataset")
    s.add_argument("--labelled", required=True, help="labelled.parquet (labeling QA's approved output)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="evaluation gates of a trained adapter on its test split")
    s.add_argument("--train", required=True, help="the train stage's output folder")
    s.add_argument("--labelled", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--champion", help="the champion's adapter.npz, or 'registry' for the version with alias champion "
                                      "(scored on the same test rows; default and first model: the TF-IDF baseline)")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("register", help="track a training in MLflow; register it as challenger if its gates passed")
    s.add_argument("--train", required=True, help="the train stage's output folder")
    s.add_argument("--evaluation", required=True, help="the evaluate stage's output folder")
    s.add_argument("--labelled", required=True, help="the labelled.parquet trained on (its md5 is the dataset version)")
    s.add_argument("--manifest", required=True, help="the licence-approved manifest (approved.parquet)")
    s.add_argument("--dataset-version", help="override the dataset version (default: md5 of --labelled, as DVC)")
    s.add_argument("--run-name")
    s.set_defaults(func=cmd_register)

    s = sub.add_parser("promote", help="release: challenger -> canary (with approval), ramp its weight, canary -> champion")
    s.add_argument("--to", choices=["canary", "champion"], default="canary")
    s.add_argument("--approved-by", required=True, help="who approves (recorded in the audit log and version tags)")
    s.add_argument("--reason", required=True, help="why (recorded)")
    s.add_argument("--version", help="the version to put in canary (default: the challenger)")
    s.add_argument("--weight", type=float, help="canary share of traffic (default release.canary.weight); "
                                                "with a canary in flight: the new weight (a ramp step)")
    s.add_argument("--audit", help="release audit log (default release.audit_uri)")
    s.add_argument("--ledger", help="licence ledger for the guard (default licensing.ledger_uri)")
    s.set_defaults(func=cmd_promote)

    s = sub.add_parser("rollback", help="release: abort the canary, or move champion back to previous")
    s.add_argument("--by", required=True, help="who rolls back (recorded)")
    s.add_argument("--reason", required=True)
    s.add_argument("--audit")
    s.set_defaults(func=cmd_rollback)

    s = sub.add_parser("status", help="release: aliases, canary weight and the latest audit entries")
    s.add_argument("--limit", type=int, default=10)
    s.add_argument("--audit")
    s.add_argument("--json", action="store_true", help="also print the state as JSON")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("serve", help="the scoring service: champion and canary from the registry, routed by weight")
    s.add_argument("--port", type=int, default=None, help="default serving.port")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--log-uri", help="prediction log location (default serving.log_uri)")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("drift", help="drift of copy, context and scores between two tables (exit 1 on dataset drift)")
    s.add_argument("--reference", required=True, help="a table in the ad-copy or prediction-log schema (.parquet, "
                                                      ".csv, .jsonl, or a folder of Parquet parts)")
    s.add_argument("--current", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_drift)

    s = sub.add_parser("licence-sweep", help="re-check licences and consents as of a date; lineage impact; remediation")
    s.add_argument("--datasets", default="data/datasets", help="dataset versions root (approved/ and labelled/ under it)")
    s.add_argument("--withdrawn", help="withdrawn consents (CSV, JSONL or Parquet: consent_id or asset_id, withdrawn_at)")
    s.add_argument("--on", help="the date to judge against (default today)")
    s.add_argument("--out", required=True)
    s.add_argument("--ledger", help="licence ledger (default licensing.ledger_uri)")
    s.add_argument("--run-id")
    s.set_defaults(func=cmd_licence_sweep)

    s = sub.add_parser("publish", help="version an approved or labelled dataset by content and point LATEST at it")
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--approved", help="folder with approved.parquet (the licence-approved dataset)")
    which.add_argument("--labelled", help="label-qa output folder with labelled.parquet (written only when QA passed)")
    s.add_argument("--datasets", required=True, help="where dataset versions live")
    s.add_argument("--logical-date")
    s.add_argument("--run-id")
    s.set_defaults(func=cmd_publish)

    s = sub.add_parser("ledger", help="why is this asset in or out: its licence decisions, every run")
    s.add_argument("--asset", required=True, help="asset id or a prefix of it")
    s.add_argument("--ledger")
    s.set_defaults(func=cmd_ledger)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("botocore", "boto3", "urllib3", "great_expectations", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.func(args, load_params(args.params))
    except (FileNotFoundError, InputError) as exc:
        print(f"{args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
