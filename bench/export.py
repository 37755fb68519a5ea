"""int8 export of the CPU student vs its fp32 self: size, posts/s and span F1, measured in one run.

    .venv/bin/python bench/export.py [--artifact DIR] [--epochs 2] [--threads 1] [--repeats 5]

Without --artifact it trains a student on the seed gold set first (all-MiniLM-L6-v2 backbone, gold
posts only); the split is the one the student experiments use: hash of the post id mod 10, 0 = test,
1 = val, the rest train. fp32 and int8 are timed interleaved (A B A B ...) so a neighbour's load on this
shared machine hits both alike; every figure is a median over --repeats. Threads are fixed (default 1).
Last line: one JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEMO = ROOT / "data" / "demo"


def split_of(post_id: str) -> str:
    from modeling.student.demo import hash_fold

    h = hash_fold(post_id, 10)
    return "test" if h == 0 else "val" if h == 1 else "train"


def compare_onnx(artifact: Path, texts: list[str], out: Path, threads: int, repeats: int) -> dict:
    """Backbone only (merged LoRA), one batch of posts: torch fp32 / torch int8 / ORT fp32 / ORT int8, seconds."""
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from modeling.export import merged_student, quantize_int8

    student, tokenizer = merged_student(artifact)
    backbone = student.backbone.float().eval()
    enc = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=128)

    class Wrapped(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    out.mkdir(parents=True, exist_ok=True)
    axes = {"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}, "states": {0: "b", 1: "s"}}
    torch.onnx.export(Wrapped(backbone), (enc["input_ids"], enc["attention_mask"]), str(out / "fp32.onnx"),
                      input_names=["input_ids", "attention_mask"], output_names=["states"], dynamic_axes=axes,
                      dynamo=False, opset_version=17)
    quantize_dynamic(str(out / "fp32.onnx"), str(out / "int8.onnx"), weight_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    sessions = {name: ort.InferenceSession(str(out / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])
                for name in ("fp32", "int8")}
    feed = {k: enc[k].numpy() for k in ("input_ids", "attention_mask")}
    q = quantize_int8(backbone)
    runs = {"torch_fp32": lambda: backbone(**enc), "torch_int8": lambda: q(**enc),
            "ort_fp32": lambda: sessions["fp32"].run(None, feed),
            "ort_int8": lambda: sessions["int8"].run(None, feed)}
    times: dict[str, list[float]] = {k: [] for k in runs}
    with torch.inference_mode():
        for f in runs.values():
            f()
        for _ in range(repeats):
            for name, f in runs.items():
                started = time.perf_counter()
                f()
                times[name].append(time.perf_counter() - started)
    result = {f"{k}_s": round(statistics.median(v), 4) for k, v in times.items()}
    result["batch_shape"] = list(enc["input_ids"].shape)
    result["faster_int8"] = "torch" if result["torch_int8_s"] <= result["ort_int8_s"] else "onnxruntime"
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--artifact", default="", help="a trained student artifact (default: train one here)")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", default=str(ROOT / "var" / "bench-export"))
    parser.add_argument("--compare-onnx", action="store_true",
                        help="also time ONNX Runtime int8 against torch int8 on the backbone (needs onnx and "
                             "onnxruntime importable; they are not project dependencies)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from modeling import export
    from modeling.student.config import StudentConfig
    from modeling.student.demo import gold_examples, read_jsonl
    from modeling.student.kbsnap import index_from_rows, rows_from_csv, with_cjk_aliases
    from modeling.metrics import evaluate as evaluate_predictions
    from modeling.student.predict import StudentPredictor
    from modeling.student.train import train_student

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gold = gold_examples(read_jsonl(DEMO / "gold_seed.jsonl"))
    train = [e for e in gold if split_of(e.id) == "train"]
    val = [e for e in gold if split_of(e.id) == "val"]
    test = [e for e in gold if split_of(e.id) == "test"]
    trained_here = not args.artifact
    train_seconds = None
    if trained_here:
        artifact = out / "artifact"
        shutil.rmtree(artifact, ignore_errors=True)
        index = index_from_rows(with_cjk_aliases(rows_from_csv(DEMO / "kb_brands.csv")))
        cfg = StudentConfig(epochs=args.epochs, threads=args.threads)
        started = time.monotonic()
        train_student(cfg, train, val, index, artifact, log=lambda m: print(m, file=sys.stderr))
        train_seconds = round(time.monotonic() - started, 1)
    else:
        artifact = Path(args.artifact)

    int8_dir = out / "int8"
    started = time.monotonic()
    manifest = export.export_student(artifact, int8_dir, fmt=export.FORMAT_INT8)
    export_seconds = round(time.monotonic() - started, 1)
    fp32 = StudentPredictor.load(artifact)
    int8 = export.load_exported(int8_dir)

    def scores(rows):
        gold_rows = [{"text": e.text, "brands": e.spans, "is_beauty": e.is_beauty} for e in rows]
        texts = [e.text for e in rows]
        a = evaluate_predictions(gold_rows, fp32.predict(texts))
        b = evaluate_predictions(gold_rows, int8.predict(texts))
        return a, b

    test_fp, test_q = scores(test)
    held_fp, held_q = scores(test + val)
    # The test split is 62 posts: one flipped span moves its F1 by about a point. All 600 gold posts (most
    # of them trained on) measure the same thing, how far int8 moves the predictions, with less noise.
    all_fp, all_q = scores(gold)

    # Throughput: every held-out post, batches of --batch, fp32 and int8 alternating.
    texts = [e.text for e in test + val]
    single = texts[:30]
    for p in (fp32, int8):
        p.predict(texts[: args.batch])  # warm-up
    rates = {"fp32": [], "int8": []}
    latency = {"fp32": [], "int8": []}
    for _ in range(args.repeats):
        for name, p in (("fp32", fp32), ("int8", int8)):
            started = time.perf_counter()
            p.predict(texts, batch_size=args.batch)
            rates[name].append(len(texts) / (time.perf_counter() - started))
            lat = []
            for text in single:
                started = time.perf_counter()
                p.predict([text], batch_size=1)
                lat.append((time.perf_counter() - started) * 1000)
            latency[name].append(statistics.median(lat))
    med = {k: statistics.median(v) for k, v in rates.items()}
    lat_med = {k: statistics.median(v) for k, v in latency.items()}
    figures = {
        "bench": "export_int8_vs_fp32",
        "backbone": StudentConfig.load(artifact / "config.json").resolved_backbone().split("/")[-2:],
        "artifact": str(artifact), "trained_here": trained_here, "train_epochs": args.epochs if trained_here else None,
        "train_seconds": train_seconds, "export_seconds": export_seconds, "threads": args.threads,
        "repeats": args.repeats, "batch": args.batch, "speed_posts": len(texts),
        "size_fp32_bytes": manifest["size_before_bytes"], "size_int8_bytes": manifest["size_after_bytes"],
        "size_ratio": manifest["size_ratio"],
        "posts_per_s_fp32": round(med["fp32"], 2), "posts_per_s_int8": round(med["int8"], 2),
        "posts_per_s_ratio": round(med["int8"] / med["fp32"], 3),
        "posts_per_s_runs": {k: [round(x, 2) for x in v] for k, v in rates.items()},
        "latency_p50_ms_fp32": round(lat_med["fp32"], 2), "latency_p50_ms_int8": round(lat_med["int8"], 2),
        "test_posts": len(test), "span_f1_fp32": round(test_fp["span_f1"], 4),
        "span_f1_int8": round(test_q["span_f1"], 4),
        "span_f1_delta_points": round((test_q["span_f1"] - test_fp["span_f1"]) * 100, 2),
        "heldout_posts": len(test) + len(val), "heldout_span_f1_fp32": round(held_fp["span_f1"], 4),
        "heldout_span_f1_int8": round(held_q["span_f1"], 4),
        "heldout_span_f1_delta_points": round((held_q["span_f1"] - held_fp["span_f1"]) * 100, 2),
        "all_gold_posts": len(gold), "all_gold_span_f1_fp32": round(all_fp["span_f1"], 4),
        "all_gold_span_f1_int8": round(all_q["span_f1"], 4),
        "all_gold_span_f1_delta_points": round((all_q["span_f1"] - all_fp["span_f1"]) * 100, 2),
        "brand_em_delta": round(test_q["brand_em"] - test_fp["brand_em"], 4),
        "target": "posts_per_s_ratio >= 1.5 and span F1 lost <= 1 point",
    }
    figures["meets_target"] = figures["posts_per_s_ratio"] >= 1.5 and figures["span_f1_delta_points"] >= -1.0
    if args.compare_onnx:
        figures["onnx_backbone"] = compare_onnx(artifact, texts[: args.batch], out / "onnx", args.threads, args.repeats)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
