"""Student vs its bare backbone vs gazetteer: speed (posts/s at batch 1 and 32) and quality, in one run.

    python bench/student.py [--artifact var/models/gen-1] [--threads 2] [--repeats 5]

Without --artifact, a small generation is trained first (the real MiniLM backbone, a few minutes of the demo
gold posts; `--out` keeps it). Speed posts: a fixed random sample of data/demo/gold_seed.jsonl (600 real
posts). The backbone figure is the bare `AutoModel` forward over the same windows of the same posts, cut into
the same encoder calls as the student's, from ready tensors: the student's ratio to it is everything the
student adds (tokenising, features, heads, decoding, linking). The padded figure is that forward with each
batch of 32 posts in one call. Timings are medians over repeats, the student's encodings cold each time;
the three take turns on each batch of 32 posts, and the ratio is the median of the repeats' own ratios,
which a busy machine disturbs less. Quality: a social-media-style set written here (hashtags, handles,
emoji, lowercase, typos, Chinese names) and one naming only brands newer than the seed KB. The gazetteer
is also timed over every demo post with and without its Aho-Corasick prefilter. Last line: one JSON object
of figures."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time

from student_common import DEMO, demo_gold, demo_index, newer_rows, read_jsonl, social_rows, train_small_student


def seconds(run) -> float:
    t = time.perf_counter()
    run()
    return time.perf_counter() - t


def posts_per_second(predict, texts: list[str], batch: int, repeats: int, before=None) -> float:
    predict(texts[:batch])  # warm-up
    runs = []
    for _ in range(repeats):
        if before:
            before()
        runs.append(seconds(lambda: [predict(texts[i:i + batch]) for i in range(0, len(texts), batch)]))
    return round(len(texts) / statistics.median(runs), 2)


def backbone_batches(student, texts: list[str], batch: int, grouped: bool) -> list[list[dict]]:
    """Ready inputs of the bare backbone, per `batch` posts: their windows (shortest post first, as the
    student orders them) in the student's encoder calls or, not `grouped`, in one call."""
    import torch

    from modeling.student.predict import call_size, length_groups

    f = student.featurizer
    batches = []
    for b in range(0, len(texts), batch):
        calls = []
        encs = sorted((f.encode(t) for t in texts[b:b + batch]), key=lambda e: len(e.input_ids))
        sizes = [call_size(f, e) for e in encs]
        for group in (length_groups(sizes) if grouped else [range(len(encs))]):
            rows = [f.prefix_ids + e.input_ids[ws:we] + f.suffix_ids for e in encs[group.start:group.stop]
                    for ws, we in e.windows]
            ids = torch.zeros((len(rows), max(map(len, rows))), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, row in enumerate(rows):
                ids[r, :len(row)] = torch.tensor(row)
                mask[r, :len(row)] = 1
            calls.append({"input_ids": ids, "attention_mask": mask})
        batches.append(calls)
    return batches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--artifact", default="", help="a generation's directory (default: train a small one)")
    parser.add_argument("--out", default="", help="where the small generation is trained (default: a temporary "
                                                  "directory, removed afterwards)")
    parser.add_argument("--epochs", type=float, default=2.0, help="the small generation's training")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--posts", type=int, default=160, help="gold posts timed (a fixed random sample)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from transformers import AutoModel

    from kb.gazetteer import Gazetteer
    from modeling.metrics import evaluate
    from modeling.student.predict import StudentPredictor

    figures = {"threads": args.threads, "repeats": args.repeats}
    artifact, train_seconds = args.artifact, None
    if not artifact:
        artifact = args.out or tempfile.mkdtemp(prefix="bench-student-")
        train_seconds = train_small_student(artifact, epochs=args.epochs, threads=args.threads,
                                            log=lambda m: print(m, file=sys.stderr, flush=True))
    figures.update(artifact=artifact, train_seconds=train_seconds)
    student = StudentPredictor.load(artifact)
    figures["lora_merged"] = not any("lora_" in name for name, _ in student.model.named_parameters())

    # What a KB edit costs (the index and its gazetteer are built again): with and without the prefilter.
    index = demo_index()
    for name, build in (("kb_index", demo_index), ("gazetteer", lambda: Gazetteer(index)),
                        ("gazetteer_plain", lambda: Gazetteer(index, prefilter=False))):
        figures[f"{name}_build_ms"] = round(statistics.median(seconds(build) for _ in range(20)) * 1000, 3)
    gazetteer = Gazetteer(index)

    def gaz_predict(texts):
        return [{"brands": [m.as_span() for m in gazetteer.find(t)], "is_beauty": None} for t in texts]

    texts = [e.text for e in demo_gold()]
    random.Random(0).shuffle(texts)
    texts = texts[:args.posts]  # the same posts at batch 1 and batch 32
    figures["posts"] = len(texts)
    social, newer = social_rows(), newer_rows()

    def cold():
        student.featurizer.clear_cache()

    backbone = AutoModel.from_pretrained(student.cfg.resolved_backbone()).eval()
    grouped, padded = backbone_batches(student, texts, 32, True), backbone_batches(student, texts, 32, False)

    def forward(calls):
        with torch.no_grad():
            for call in calls:
                backbone(**call)

    def repeat() -> dict[str, float]:
        """One pass over the posts, the three taking turns on each batch of 32 (so that a busy moment of
        the machine falls on all of them): seconds of each."""
        took = {"student": 0.0, "backbone": 0.0, "padded": 0.0}
        for b, i in enumerate(range(0, len(texts), 32)):
            took["student"] += seconds(lambda: student.predict(texts[i:i + 32]))
            took["backbone"] += seconds(lambda: forward(grouped[b]))
            took["padded"] += seconds(lambda: forward(padded[b]))
        return took

    repeat()  # warm-up
    runs = {"student": [], "backbone": [], "padded": []}
    for _ in range(args.repeats):
        cold()
        for name, took in repeat().items():
            runs[name].append(took)
    for name, key in (("student", "student_posts_s_batch32"), ("backbone", "backbone_posts_s_batch32"),
                      ("padded", "backbone_padded_posts_s_batch32")):
        figures[key] = round(len(texts) / statistics.median(runs[name]), 2)
    figures["student_vs_backbone_batch32"] = round(statistics.median(
        b / s for s, b in zip(runs["student"], runs["backbone"])), 4)
    figures["student_posts_s_batch1"] = posts_per_second(student.predict, texts, 1, args.repeats, cold)
    figures["gazetteer_posts_s_batch1"] = posts_per_second(gaz_predict, texts, 1, args.repeats)
    figures["gazetteer_posts_s_batch32"] = posts_per_second(gaz_predict, texts, 32, args.repeats)

    every = [r["text"] for path in sorted(DEMO.glob("*.jsonl")) for r in read_jsonl(path) if "text" in r]
    figures["demo_posts"] = len(every)
    for name, g in (("gazetteer", gazetteer), ("gazetteer_plain", Gazetteer(index, prefilter=False))):
        figures[f"{name}_demo_posts_s"] = posts_per_second(lambda ts, g=g: [g.find(t) for t in ts], every,
                                                           len(every), args.repeats)

    for name, predict in (("student", student.predict), ("gazetteer", gaz_predict)):
        q = evaluate(social, predict([r["text"] for r in social]))
        figures[f"{name}_social_span_f1"] = round(q["span_f1"], 4)
        figures[f"{name}_social_brand_em"] = round(q["brand_em"], 4)
        q = evaluate(newer, predict([r["text"] for r in newer]))
        figures[f"{name}_newer_brands_span_f1"] = round(q["span_f1"], 4)
        figures[f"{name}_newer_brands_span_recall"] = round(q["span_recall"], 4)
    figures["student_vs_gazetteer_batch32"] = round(figures["student_posts_s_batch32"] /
                                                     figures["gazetteer_posts_s_batch32"], 4)
    if train_seconds is not None and not args.out:
        shutil.rmtree(artifact, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
