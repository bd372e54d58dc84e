"""Benchmark: LoRA against full fine-tuning of the copy scorer, and inference latency.

    .venv/bin/python benchmarks/bench_training.py [--rows 600] [--epochs 2] [--seq 64] [--calls 100]

1. The machine's matrix-multiply rate: float32 2048×2048 ``tf.matmul`` in a ``tf.function``,
   median of 20 runs → FLOP/s, the denominator of model FLOP utilisation (MFU).
2. Training, each variant in a fresh process (so peak RSS is its own), same data, same seed,
   same epochs: LoRA (adapters + heads) and full fine-tuning (every weight of the base too).
   Trainable parameters, median step time, examples/s, MFU (training FLOPs ≈ 3 × forward for
   full fine-tuning, ≈ 2 × forward for LoRA: no weight gradients of the frozen base), peak RSS,
   final validation metrics.
3. Inference of the trained LoRA model at batch 1 and 4: p50/p95 of the ``tf.function`` path
   against ``model.predict()`` and against the serving path (``Scorer.score``: text in,
   tokenising included, the model XLA-compiled), and the compute-bound time (forward FLOPs /
   measured FLOP/s).

Forward FLOPs per example: 2 × (encoder parameters without embeddings) × tokens, plus the
attention products 4 × layers × tokens² × hidden. Writes its section of benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from results import write_section  # noqa: E402

CHILD = r"""
import json, resource, sys, time
import numpy as np
args = json.loads(sys.argv[1])
import keras
from ml.common.config import load_params
from ml.training.model import Scorer, ScorerConfig, set_determinism, texts
from ml.training.train import load_labelled, targets, assign_split
params = load_params()
set_determinism(42)
frame = load_labelled(args["labelled"])
frame["split"] = assign_split(frame, params["training"]["split"], 42)
scorer = Scorer(ScorerConfig(max_seq_len=args["seq"]))
if args["mode"] == "full":
    for w in scorer.backbone.weights:
        w.trainable = "lora_kernel" not in w.path
trainable = int(sum(np.prod(w.shape) for w in scorer.model.trainable_weights))
scorer.model.compile(optimizer=keras.optimizers.Adam(args["lr"]),
                     loss={"engagement": "sparse_categorical_crossentropy", "brand_voice": "binary_crossentropy"},
                     metrics={"engagement": ["accuracy"], "brand_voice": ["accuracy"]})
train, val = frame[frame.split == "train"], frame[frame.split == "val"]
xt, xv = scorer.features(*texts(train)), scorer.features(*texts(val))
steps = []
class Clock(keras.callbacks.Callback):
    def on_train_batch_begin(self, b, logs=None): self.t = time.perf_counter()
    def on_train_batch_end(self, b, logs=None): steps.append(time.perf_counter() - self.t)
h = scorer.model.fit(xt, targets(train), validation_data=(xv, targets(val)), epochs=args["epochs"],
                     batch_size=args["batch"], verbose=0, callbacks=[Clock()])
out = {"trainable": trainable, "total": int(scorer.model.count_params()), "steps": steps,
       "final": {k: float(v[-1]) for k, v in h.history.items()},
       "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
if args["mode"] == "lora":
    import tensorflow as tf
    context, copy = texts(val)
    lat = {}
    model_fn = tf.function(lambda x: scorer.model(x, training=False))  # the model alone, on token ids
    for batch in (1, 4):
        pair = ([context[0]] * batch, [copy[0]] * batch)
        x = scorer.features(*pair)
        for _ in range(3):
            model_fn(x); scorer.model.predict(x, verbose=0); scorer.score(*pair)
        tf_times, pr_times, sv_times = [], [], []
        for _ in range(args["calls"]):
            t = time.perf_counter(); model_fn(x)["engagement"].numpy(); tf_times.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter(); scorer.score(*pair); sv_times.append((time.perf_counter() - t) * 1000)
        for _ in range(max(10, args["calls"] // 5)):
            t = time.perf_counter(); scorer.model.predict(x, verbose=0); pr_times.append((time.perf_counter() - t) * 1000)
        lat[batch] = {"tf_p50": float(np.percentile(tf_times, 50)), "tf_p95": float(np.percentile(tf_times, 95)),
                      "predict_p50": float(np.percentile(pr_times, 50)), "predict_p95": float(np.percentile(pr_times, 95)),
                      "serve_p50": float(np.percentile(sv_times, 50)), "serve_p95": float(np.percentile(sv_times, 95))}
    out["latency"] = lat
    cfg = scorer.backbone.get_config()
    embed = sum(np.prod(w.shape) for w in scorer.backbone.weights if "embedding" in w.path)
    out["encoder_params"] = int(sum(np.prod(w.shape) for w in scorer.backbone.weights if "lora" not in w.path) - embed)
    out["layers"], out["hidden"] = cfg["num_layers"], cfg["hidden_dim"]
print("RESULT " + json.dumps(out))
"""


def matmul_flops(n: int = 2048, repeats: int = 20) -> float:
    import tensorflow as tf

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    f = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    f(a, b)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f(a, b).numpy()
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times)


def child(mode: str, args, labelled: str) -> dict:
    payload = {"mode": mode, "labelled": labelled, "seq": args.seq, "epochs": args.epochs, "batch": args.batch,
               "lr": args.lr, "calls": args.calls}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(payload)], capture_output=True, text=True,
                         cwd=REPO, timeout=3600)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=600, help="synthetic copy rows labelled with the generator's truth")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.005)
    ap.add_argument("--full-lr", type=float, default=5e-5, help="learning rate of full fine-tuning")
    ap.add_argument("--calls", type=int, default=100)
    args = ap.parse_args()

    import pandas as pd

    from ml.common.config import load_params
    from ml.data.sources import open_source

    data = open_source(f"synthetic://?seed=8&n={args.rows * 2}&copy_share=0.5&problem_share=0", load_params()).data
    rows = [json.loads(line) for line in data.read("copy.jsonl").decode().splitlines()]
    frame = pd.DataFrame(rows)
    frame["engagement_label"] = frame["copy_variant_id"].map(lambda i: data.truth[i]["engagement_label"])
    frame["brand_voice"] = frame["copy_variant_id"].map(lambda i: data.truth[i]["brand_voice"])
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    labelled = str(work / "labelled.parquet")
    frame.to_parquet(labelled)

    flops = matmul_flops()
    lora = child("lora", args, labelled)
    full_args = argparse.Namespace(**{**vars(args), "lr": args.full_lr})
    full = child("full", full_args, labelled)

    tokens = args.seq
    forward = 2 * lora["encoder_params"] * tokens + 4 * lora["layers"] * tokens ** 2 * lora["hidden"]
    rows_out = []
    for name, r, factor in (("LoRA (rank 4, query+value) + heads", lora, 2), ("full fine-tuning", full, 3)):
        step = statistics.median(r["steps"][2:] or r["steps"])
        eps = args.batch / step
        mfu = eps * factor * forward / flops
        f = r["final"]
        rows_out.append(f"| {name} | {r['trainable']:,} | {step * 1000:.0f} | {eps:.1f} | {mfu:.1%} | "
                        f"{r['peak_rss_mib']:.0f} | {f.get('val_engagement_accuracy', float('nan')):.3f} | "
                        f"{f.get('val_brand_voice_accuracy', float('nan')):.3f} | {f.get('val_loss', float('nan')):.3f} |")
    compute_ms = {b: b * forward / flops * 1000 for b in (1, 4)}
    lat = lora["latency"]
    cmd = (f".venv/bin/python benchmarks/bench_training.py --rows {args.rows} --epochs {args.epochs} --seq {args.seq} "
           f"--batch {args.batch} --calls {args.calls}")
    text = "\n".join([
        "## Training: LoRA against full fine-tuning; inference latency", "",
        f"Machine: {os.cpu_count()} cores; measured float32 matmul rate {flops / 1e9:.1f} GFLOP/s. Produced by `{cmd}` "
        f"on {time.strftime('%Y-%m-%d')}. {len(frame)} synthetic copy rows labelled with the generator's truth, "
        f"{args.epochs} epochs, batch {args.batch}, {args.seq} tokens, each variant in its own process. "
        f"Forward pass ≈ {forward / 1e9:.2f} GFLOP per example.", "",
        "| variant | trainable params | median step ms | examples/s | MFU | peak RSS MiB | val engagement acc | "
        "val voice acc | val loss |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|", *rows_out, "",
        "| batch | tf.function p50 ms | p95 ms | predict() p50 ms | p95 ms | serving path p50 ms | p95 ms | "
        "compute-bound ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[f"| {b} | {lat[str(b)]['tf_p50']:.1f} | {lat[str(b)]['tf_p95']:.1f} | {lat[str(b)]['predict_p50']:.1f} | "
          f"{lat[str(b)]['predict_p95']:.1f} | {lat[str(b)]['serve_p50']:.1f} | {lat[str(b)]['serve_p95']:.1f} | "
          f"{compute_ms[b]:.1f} |" for b in (1, 4)], "",
        "tf.function and predict() run the model alone on token ids. The serving path is `Scorer.score`, what the "
        "evaluation gate and the scoring service call: text pairs in, masking and tokenising in a tf.function, the "
        "model XLA-compiled (`jit_compile=True`).",
    ])
    write_section("training", text)
    print(text)


if __name__ == "__main__":
    main()
