"""Student vs gazetteer speed (posts/s at batch 1 and 32) and quality, in one run, on the same posts.

    python bench/student.py --artifact var/models/gen-1 [--threads 2]

Posts: all of data/demo/gold_seed.jsonl (600 real posts) for speed; for quality, a social-media-style set
written here (hashtags, handles, emoji, lowercase, typos, Chinese names) and one naming only brands newer
than the seed KB (neither the KB nor the teacher's demo answers know them). Last line: one JSON object of figures."""

from __future__ import annotations

import argparse
import json
import time

from student_common import demo_gold, demo_index, newer_rows, newest_artifact, social_rows


def posts_per_second(predict, texts: list[str], batch: int, limit: int) -> float:
    texts = texts[:limit]
    predict(texts[:batch])  # warm-up
    t = time.perf_counter()
    for i in range(0, len(texts), batch):
        predict(texts[i:i + batch])
    return round(len(texts) / (time.perf_counter() - t), 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--artifact", default="", help="a generation's directory (default: newest under var/models)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--posts", type=int, default=160, help="gold posts timed (a fixed random sample)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from kb.gazetteer import Gazetteer
    from modeling.metrics import evaluate
    from modeling.student.predict import StudentPredictor

    artifact = newest_artifact(args.artifact)
    student = StudentPredictor.load(artifact)
    gazetteer = Gazetteer(demo_index())

    def gaz_predict(texts):
        return [{"brands": [m.as_span() for m in gazetteer.find(t)], "is_beauty": None} for t in texts]

    gold = [{"text": e.text, "brands": e.spans, "is_beauty": e.is_beauty} for e in demo_gold()]
    import random

    texts = [g["text"] for g in gold]
    random.Random(0).shuffle(texts)
    texts = texts[:args.posts]  # the same posts at batch 1 and batch 32
    social = social_rows()
    newer = newer_rows()
    figures = {"artifact": artifact, "threads": args.threads, "posts": len(texts)}
    for name, predict in (("student", student.predict), ("gazetteer", gaz_predict)):
        figures[f"{name}_posts_s_batch1"] = posts_per_second(predict, texts, 1, len(texts))
        figures[f"{name}_posts_s_batch32"] = posts_per_second(predict, texts, 32, len(texts))
        q = evaluate(social, predict([r["text"] for r in social]))
        figures[f"{name}_social_span_f1"] = round(q["span_f1"], 4)
        figures[f"{name}_social_brand_em"] = round(q["brand_em"], 4)
        q = evaluate(newer, predict([r["text"] for r in newer]))
        figures[f"{name}_newer_brands_span_f1"] = round(q["span_f1"], 4)
        figures[f"{name}_newer_brands_span_recall"] = round(q["span_recall"], 4)
    figures["student_vs_gazetteer_batch32"] = round(figures["student_posts_s_batch32"] /
                                                     figures["gazetteer_posts_s_batch32"], 4)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
