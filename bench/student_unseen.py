"""Does the student find brands nobody told it about? Two held-out measurements, one training per fold.

--holdout brands (default): cross-validation grouped by brand. The brands named in the labels (gold, Reddit
  silver, social silver) are split into `--folds` groups by a hash of their name; per fold, every post that
  names a held-out brand leaves training, and the held-out brands' names leave the KB (aliases included) and
  therefore the lexicon. The student and the dictionary are then scored on those posts: recall and precision
  on the mentions that are unseen (form and brand absent from the fold's KB and training labels), and span
  P/R/F1 on all their mentions.
--holdout posts: a fifth of the social-style posts (by a hash of their id) never trains; the student trained
  on everything else and the dictionary are scored on them per platform against the teacher's answers (the
  only labels those posts have: the teacher is the reference here, so its own figure is not reported).
  With --reddit-test, a fifth of the gold posts (human labels: Reddit and Twitter) and a fifth of the Reddit
  silver posts (teacher labels) leave training too, and are scored beside: is Reddit kept?

Both leave `data/demo/posts_social.jsonl`'s held-out fifth out of training. Prints one JSON line per fold;
the last line is one JSON object with the means. `--config '{"swap_prob": 0}'` trains the previous recipe.

    python bench/student_unseen.py [--holdout brands|posts] [--folds 5] [--only 0] [--epochs 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time

from student_common import DEMO, demo_gold, demo_silver, hash_fold, read_jsonl

SOCIAL_TEST_FOLDS = 5  # 1 in 5 social posts is the held-out social test set


def social_silver(weight: float):
    from modeling.student.demo import silver_examples

    return silver_examples(read_jsonl(DEMO / "posts_social.jsonl"), read_jsonl(DEMO / "teacher_answers_social.jsonl"),
                           weight)


def is_social_test(example) -> bool:
    return hash_fold("social-test:" + example.id, SOCIAL_TEST_FOLDS) == 0


def brand_fold(name: str, folds: int) -> int:
    from kb.linking import normalize

    return hash_fold("brand:" + normalize(name), folds)


def held_out_kb(rows: list[dict], held_keys: set[str]) -> list[dict]:
    """KB rows without the held-out brands, and without any alias that writes a held-out name."""
    from kb.linking import normalize

    out = []
    for row in rows:
        if normalize(row["canonical_name"]) in held_keys:
            continue
        aliases = [a for a in row["aliases"] if normalize(a) not in held_keys]
        out.append({**row, "aliases": aliases})
    return out


def score(rows, preds, known, platforms=None) -> dict:
    from kb.linking import normalize
    from modeling.metrics import evaluate, span_prf_by_group, unseen_brand_scores

    figures = evaluate(rows, preds)
    out = {k: round(figures[k], 4) for k in ("span_precision", "span_recall", "span_f1", "brand_em")}
    out.update({k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in unseen_brand_scores(rows, preds, known, normalize).items()})
    if platforms is not None:
        out["per_platform"] = {p: {k: round(v, 4) if isinstance(v, float) else v for k, v in f.items()}
                               for p, f in span_prf_by_group(rows, preds, platforms).items()}
    return out


def run_fold(args, cfg, gold, silver, social, kb_rows, k: int) -> dict:
    from kb.linking import normalize
    from modeling.predictors import GazetteerPredictor
    from modeling.student.kbsnap import index_from_rows
    from modeling.student.predict import StudentPredictor
    from modeling.student.train import train_student, tune_decoding, with_silver_val

    everything = gold + silver + social
    extra_tests: dict[str, list] = {}  # further held-out sets (posts holdout, --reddit-test), scored beside
    social_test = {id(e) for e in social if is_social_test(e)}
    if args.holdout == "brands":
        held = {normalize(s.get("brand") or s["text"]) for e in everything for s in e.spans
                if brand_fold(s.get("brand") or s["text"], args.folds) == k}
        held_forms = held | {normalize(e.text[s["start"]:s["end"]]) for e in everything for s in e.spans
                             if normalize(s.get("brand") or s["text"]) in held}
        names_held = [e for e in everything if any(normalize(s.get("brand") or s["text"]) in held for s in e.spans)]
        ids = {id(e) for e in names_held}
        pool = [e for e in everything if id(e) not in ids and id(e) not in social_test]
        test = names_held
        rows = held_out_kb(kb_rows, held_forms)
    else:
        held, held_forms = set(), set()
        test = [e for e in social if is_social_test(e)]
        if args.reddit_test:  # a fifth of the gold (human labels) and of the Reddit silver never train either
            extra_tests = {"gold_test": [e for e in gold if hash_fold("gold-test:" + e.id, 5) == 0],
                           "reddit_silver_test": [e for e in silver if hash_fold("silver-test:" + e.id, 5) == 0]}
        kept_out = social_test | {id(e) for posts in extra_tests.values() for e in posts}
        pool = [e for e in everything if id(e) not in kept_out]
        rows = kb_rows
    index = index_from_rows(rows)
    # Val: a tenth of the gold (train_student adds a share of each platform's silver to it).
    gold_pool = [e for e in pool if e.kind == "gold"]
    val = [e for e in gold_pool if hash_fold("val:" + e.id, 10) == 0]
    train = [e for e in pool if not (e.kind == "gold" and hash_fold("val:" + e.id, 10) == 0)]
    t = time.monotonic()
    val_posts = {"gold": len(val)}
    if args.reuse:  # score an artifact this fold trained before, its decoding tuned again by today's code
        out = args.reuse
        student = StudentPredictor.load(out)
        _, tune_val, _ = with_silver_val(train, val, student.cfg)
        decoding = tune_decoding(student.model, student.featurizer, student.index, student.brands, student.cfg,
                                 tune_val, "cpu", plain_words=student.plain_words)
        student.cfg.word_rule, student.cfg.span_threshold = decoding["word_rule"], decoding["span_threshold"]
        print(f"fold {k}: decoding {decoding['word_rule']} {decoding['span_threshold']}", file=sys.stderr)
    else:
        out = tempfile.mkdtemp(prefix=f"student-unseen-{k}-")
        val_posts = train_student(cfg, train, val, index, out, log=lambda m: print(f"fold {k}: {m}", file=sys.stderr,
                                                                                  flush=True))["val_posts"]
        student = StudentPredictor.load(out)
    seconds = time.monotonic() - t
    known = student.known_keys()
    leaked = sorted(held_forms & known)  # a held-out name the fold still knows: the split would be unfair
    gazetteer = GazetteerPredictor(index)

    def scored(posts) -> dict:
        rows_ = [{"text": e.text, "brands": e.spans, "is_beauty": e.is_beauty} for e in posts]
        texts, platforms = [e.text for e in posts], [e.platform for e in posts]
        return {"student": score(rows_, student.predict(texts), known, platforms),
                "gazetteer": score(rows_, gazetteer.predict(texts), known, platforms)}

    result = {"fold": k, "holdout": args.holdout, "train_posts": len(train), "val": val_posts,
              "test_posts": len(test), "held_out_brands": len(held), "held_out_sample": sorted(held)[:30],
              "held_out_names_still_known": leaked[:20], "train_seconds": round(seconds, 1), **scored(test)}
    for name, posts in extra_tests.items():
        result[name] = {"posts": len(posts), **scored(posts)}
    if args.reuse:
        return result
    if args.keep:
        shutil.rmtree(args.keep, ignore_errors=True)
        shutil.move(out, args.keep)
    shutil.rmtree(out, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--holdout", choices=("brands", "posts"), default="brands")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated fold numbers to run (default: all)")
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--config", default="{}", help="StudentConfig overrides as JSON")
    parser.add_argument("--keep", default="", help="move the (last) fold's artifact here instead of deleting it")
    parser.add_argument("--reuse", default="", help="score this fold's artifact (from --keep) instead of training")
    parser.add_argument("--reddit-test", action="store_true",
                        help="--holdout posts: also keep a fifth of the gold and of the Reddit silver out, and score them")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N posts of each file (smoke runs)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from modeling.student.config import StudentConfig
    from modeling.student.kbsnap import rows_from_csv, with_cjk_aliases

    cfg = StudentConfig(**json.loads(args.config))
    if args.epochs is not None:
        cfg.epochs = args.epochs
    gold, silver, social = demo_gold(), demo_silver(cfg.silver_weight), social_silver(cfg.silver_weight)
    if args.limit:
        gold, silver, social = gold[:args.limit], silver[:args.limit], social[:args.limit]
    files = [DEMO / "kb_brands.csv"] + ([DEMO / "kb_aliases_extra.csv"] if (DEMO / "kb_aliases_extra.csv").exists() else [])
    kb_rows = with_cjk_aliases(rows_from_csv(*files))
    folds = [int(f) for f in args.only.split(",")] if args.only else list(range(args.folds if args.holdout == "brands" else 1))
    results = []
    for k in folds:
        result = run_fold(args, cfg, gold, silver, social, kb_rows, k)
        results.append(result)
        print(json.dumps(result, ensure_ascii=False), flush=True)
    keys = ("span_precision", "span_recall", "span_f1", "brand_em", "unseen_recall", "unseen_precision")
    mean = {m: {k: round(sum(r[m][k] or 0 for r in results) / len(results), 4) for k in keys}
            for m in ("student", "gazetteer")}
    print(json.dumps({"holdout": args.holdout, "folds": folds, "epochs": cfg.epochs, "config": json.loads(args.config),
                      "mean": mean, "mean_train_seconds": round(sum(r["train_seconds"] for r in results) / len(results), 1),
                      "unseen_mentions": sum(r["student"]["unseen_mentions"] for r in results)}))


if __name__ == "__main__":
    main()
