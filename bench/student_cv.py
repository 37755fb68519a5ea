"""5-fold cross-validation of the student over the 600 gold posts (data/demo/gold_seed.jsonl).

Per fold: train on the other 4 folds' gold (10% of it held out as val for early stopping) + all silver
(teacher answers on posts_unlabelled.jsonl, aligned), then score the held-out fold; the gazetteer (the
app's baseline: KB matches, is_beauty from a match or beauty wording) is scored on the same fold.
Prints per-fold figures and the means; last line: one JSON object.

    python bench/student_cv.py [--epochs 3] [--folds 5] [--only 0,1] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time

from student_common import demo_gold, demo_index, demo_silver, hash_fold

KEYS = ("span_f1", "span_precision", "span_recall", "brand_em", "category_accuracy", "beauty_f1",
        "brand_count_accuracy", "count_head_accuracy")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated fold numbers to run (default: all)")
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--config", default="{}", help="StudentConfig overrides as JSON")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from modeling.metrics import brand_count_accuracy, evaluate
    from modeling.predictors import GazetteerPredictor
    from modeling.student.config import StudentConfig
    from modeling.student.predict import StudentPredictor
    from modeling.student.train import train_student

    cfg = StudentConfig(**json.loads(args.config))
    if args.epochs is not None:
        cfg.epochs = args.epochs
    index = demo_index()
    gazetteer = GazetteerPredictor(index)
    gold = demo_gold()
    silver = demo_silver(cfg.silver_weight)
    folds = [int(f) for f in args.only.split(",")] if args.only else list(range(args.folds))
    results = []
    for k in folds:
        test = [e for e in gold if hash_fold(e.id, args.folds) == k]
        rest = [e for e in gold if hash_fold(e.id, args.folds) != k]
        val = [e for e in rest if hash_fold("val:" + e.id, 10) == 0]
        train = [e for e in rest if hash_fold("val:" + e.id, 10) != 0]
        out = tempfile.mkdtemp(prefix=f"student-cv-{k}-")
        t = time.monotonic()
        summary = train_student(cfg, train + silver, val, index, out)
        seconds = time.monotonic() - t
        student = StudentPredictor.load(out)
        rows = [{"text": e.text, "brands": e.spans, "is_beauty": e.is_beauty} for e in test]
        preds = student.predict([e.text for e in test])
        s = evaluate(rows, preds)
        s["count_head_accuracy"] = brand_count_accuracy(rows, preds, [p["brand_count_head"] for p in preds])
        g = evaluate(rows, gazetteer.predict([e.text for e in test]))
        fold = {"fold": k, "test_posts": len(test), "train_gold": len(train), "val": len(val), "silver": len(silver),
                "train_seconds": round(seconds, 1), "best_val_span_f1": summary["best_val"]["span_f1"],
                "student": {key: round(s[key], 4) for key in KEYS if s.get(key) is not None},
                "gazetteer": {key: round(g[key], 4) for key in KEYS if g.get(key) is not None}}
        results.append(fold)
        print(json.dumps(fold), flush=True)
        shutil.rmtree(out, ignore_errors=True)
    mean = {model: {key: round(sum(r[model][key] for r in results) / len(results), 4)
                    for key in KEYS if all(key in r[model] for r in results)} for model in ("student", "gazetteer")}
    print(json.dumps({"folds": folds, "epochs": cfg.epochs, "mean": mean,
                      "mean_train_seconds": round(sum(r["train_seconds"] for r in results) / len(results), 1)}))


if __name__ == "__main__":
    main()
