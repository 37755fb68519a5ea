"""Freeze and export a dataset version of 100,000 gold posts (+ silver candidates) on SQLite.

    .venv/bin/python bench/freeze.py [--posts 100000] [--silver 10000] [--keep] [--no-tracemalloc]

Creates a temporary SQLite database, migrates it and fills it with bulk_create (synthetic posts with
emoji/CJK, 0-3 gold spans each, teacher predictions for posts without gold). Each phase then runs in a
fresh child process, so each peak RSS (getrusage ru_maxrss) is that phase's alone:

- baseline: count(*) of the gold annotations, then a plain read of the same rows the freeze reads
  (annotation + post text, and every span) with no work on them;
- freeze: v1, every gold post and silver candidate (items written, export hashed, diff to no parent);
- export: v1 to JSONL files (+ manifest), verified against the frozen sha256;
- items_read: a plain read of v1's items (the export's own baseline);
- freeze_v2: 1% of spans edited, then v2 (includes the streamed diff against v1);
- freeze_traced: v3 with tracemalloc on, for the Python heap peak (its time is slower by design;
  --no-tracemalloc skips it).

The last line is one JSON object with every figure, ratios against the baselines of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from kb.rules import CATEGORY_SLUGS  # noqa: E402 - after the path: the benchmarks run as scripts

CATEGORIES = CATEGORY_SLUGS
BRANDS = ["Glossier", "SK-II", "La Mer", "Fenty Beauty", "雪花秀", "The Ordinary", "Rare Beauty", "Dior", "CeraVe",
          "Olaplex", "OPI", "Le Labo", "Drunk Elephant", "Laneige", "资生堂", "Charlotte Tilbury"]
FILLERS = ["loving my", "finally tried", "ngl", "is", "worth it?", "💄", "✨", "vs", "haul from", "#skincare", "tbh",
           "my holy grail", "美白", "dupe for"]
CHUNK = 5000


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def current_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def django_setup(workdir: Path) -> None:
    os.environ["BEAUTYBRAIN_VAR_DIR"] = str(workdir / "var")
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "beautybrain_app.settings"
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()


def make_post(rng: random.Random, i: int) -> tuple[str, list[tuple[int, int, str, str]]]:
    """A text and its mentions (start, end, brand, category)."""
    parts: list[str] = [f"#{i}"]
    mentions = []
    for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3))):
        parts.append(rng.choice(FILLERS))
        brand = rng.choice(BRANDS)
        start = len(" ".join(parts)) + 1
        parts.append(brand)
        mentions.append((start, start + len(brand), brand, rng.choice(CATEGORIES)))
    parts += rng.sample(FILLERS, 3)
    return " ".join(parts), mentions


def phase_generate(n_posts: int, n_silver: int) -> dict:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from annotation.models import Annotation, Post, Prediction, Span
    from annotation.services.importing import content_hash
    from annotation.services.users import system_user
    from kb.models import Category

    rng = random.Random(5)
    cats = {slug: Category.objects.create(slug=slug, name=slug.title()).pk for slug in CATEGORIES}
    author = system_user()
    started = time.perf_counter()
    spans_total = 0
    for base in range(0, n_posts + n_silver, CHUNK):
        posts, anns, spans, preds = [], [], [], []
        for i in range(base, min(base + CHUNK, n_posts + n_silver)):
            text, mentions = make_post(rng, i)
            pid = i + 1
            posts.append(Post(id=pid, platform="tiktok", external_id=f"tt-{i}", text=text,
                              content_hash=content_hash(text)))
            if i < n_posts:
                anns.append(Annotation(id=pid, post_id=pid, annotator=author, is_gold=True, is_beauty=bool(mentions),
                                       status=Annotation.Status.ACCEPTED, origin=Annotation.Origin.IMPORT))
                spans += [Span(annotation_id=pid, start=s, end=e, text=text[s:e], brand_text=b, category_id=cats[c])
                          for s, e, b, c in mentions]
            else:
                preds.append(Prediction(post_id=pid, source=Prediction.Source.TEACHER, model_version="gemini-2.5-flash",
                                        prompt_version="p1", is_beauty=bool(mentions), reasoning="synthetic",
                                        spans=[{"start": s, "end": e, "text": text[s:e], "brand": b, "category": c}
                                               for s, e, b, c in mentions]))
        Post.objects.bulk_create(posts)
        Annotation.objects.bulk_create(anns)
        Span.objects.bulk_create(spans)
        Prediction.objects.bulk_create(preds)
        spans_total += len(spans)
    return {"generate_s": round(time.perf_counter() - started, 2), "gold_posts": n_posts, "silver_candidates": n_silver,
            "gold_spans": spans_total}


def phase_baseline() -> dict:
    from annotation.models import Annotation, Span

    rss_start = current_rss_mb()
    t0 = time.perf_counter()
    n = Annotation.objects.filter(is_gold=True).count()
    count_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = 0
    for _ in Annotation.objects.filter(is_gold=True).order_by("post_id").values_list(
            "id", "post_id", "is_beauty", "post__text", "post__content_hash", "post__external_id", "post__platform",
            "post__posted_at").iterator(chunk_size=1000):
        rows += 1
    for _ in Span.objects.values_list("annotation_id", "start", "end", "text", "brand_text", "category__slug").iterator(
            chunk_size=1000):
        rows += 1
    return {"count_s": round(count_s, 4), "count": n, "plain_read_s": round(time.perf_counter() - t0, 3),
            "plain_read_rows": rows, "rss_start_mb": rss_start, "peak_rss_mb": peak_rss_mb()}


def phase_freeze(note: str, edit_share: float = 0.0) -> dict:
    from annotation.models import Span
    from annotation.services.datasets import dataset_freeze_now

    edited = 0
    if edit_share:  # corrections after v1: later versions only
        ids = list(Span.objects.order_by("id").values_list("id", flat=True)[:: int(1 / edit_share)])
        edited = Span.objects.filter(id__in=ids).update(brand_text="Edited Brand")
    rss_start = current_rss_mb()
    t0 = time.perf_counter()
    version = dataset_freeze_now(note=note)
    elapsed = time.perf_counter() - t0
    c = version.counts
    diff = c["diff_to_parent"]
    return {"version": version.number, "freeze_s": round(elapsed, 2), "gold": c["gold"], "silver": c["silver"],
            "spans": c["spans"], "silver_left_out": c["silver_left_out"],
            "splits": {k: v["gold"] for k, v in c["splits"].items()}, "sha256": version.sha256,
            "spans_edited": edited, "diff_posts": diff["posts"], "diff_spans": diff["spans"],
            "rss_start_mb": rss_start, "peak_rss_mb": peak_rss_mb()}


def phase_freeze_traced(note: str) -> dict:
    import tracemalloc

    tracemalloc.start()
    out = phase_freeze(note)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"freeze_traced_s": out["freeze_s"], "tracemalloc_peak_mb": round(peak / 2**20, 1),
            "peak_rss_mb": out["peak_rss_mb"], "sha256": out["sha256"]}


def phase_export(outdir: Path) -> dict:
    from annotation.models import DatasetVersion
    from annotation.services.datasets import dataset_version_export

    version = DatasetVersion.objects.get(number=1)
    rss_start = current_rss_mb()
    t0 = time.perf_counter()
    manifest = dataset_version_export(version=version, outdir=outdir)
    elapsed = time.perf_counter() - t0
    return {"export_s": round(elapsed, 2), "bytes": sum(f["bytes"] for f in manifest["files"].values()),
            "lines": {k: f["lines"] for k, f in manifest["files"].items()}, "verified_sha256": manifest["sha256"],
            "rss_start_mb": rss_start, "peak_rss_mb": peak_rss_mb()}


def phase_items_read() -> dict:
    from annotation.models import DatasetItem

    t0 = time.perf_counter()
    rows = 0
    for _ in DatasetItem.objects.filter(version__number=1).order_by("post_id").values_list(
            "external_id", "platform", "text", "posted_at", "is_beauty", "spans", "kind").iterator(chunk_size=2000):
        rows += 1
    return {"items_read_s": round(time.perf_counter() - t0, 3), "rows": rows, "peak_rss_mb": peak_rss_mb()}


def run_child(workdir: Path, phase: str, *extra: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--phase", phase, "--workdir", str(workdir), *extra],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"phase {phase} failed")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{phase}: {json.dumps(result)}", file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--silver", type=int, default=10_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary database and export")
    parser.add_argument("--no-tracemalloc", action="store_true", help="skip the (slow) tracemalloc phase")
    parser.add_argument("--phase")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()

    if args.phase:
        django_setup(args.workdir)
        result = {
            "generate": lambda: phase_generate(args.posts, args.silver),
            "baseline": phase_baseline,
            "freeze": lambda: phase_freeze("bench v1"),
            "export": lambda: phase_export(args.workdir / "export-v1"),
            "items_read": phase_items_read,
            "freeze_v2": lambda: phase_freeze("bench v2", edit_share=0.01),
            "freeze_traced": lambda: phase_freeze_traced("bench v3"),
        }[args.phase]()
        print(json.dumps(result))
        return

    workdir = Path(tempfile.mkdtemp(prefix="bb-bench-freeze-"))
    try:
        gen = run_child(workdir, "generate", "--posts", str(args.posts), "--silver", str(args.silver))
        base = run_child(workdir, "baseline")
        v1 = run_child(workdir, "freeze")
        export = run_child(workdir, "export")
        items = run_child(workdir, "items_read")
        v2 = run_child(workdir, "freeze_v2")
        traced = {"peak_rss_mb": 0, "tracemalloc_peak_mb": None, "freeze_traced_s": None}
        if not args.no_tracemalloc:
            traced = run_child(workdir, "freeze_traced")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    peak = max(v1["peak_rss_mb"], export["peak_rss_mb"], v2["peak_rss_mb"], traced["peak_rss_mb"])
    figures = {
        "bench": "freeze",
        "database": "sqlite",
        "posts": gen["gold_posts"] + gen["silver_candidates"],
        "gold_posts": gen["gold_posts"],
        "silver_candidates": gen["silver_candidates"],
        "gold_spans": gen["gold_spans"],
        "items_v1": v1["gold"] + v1["silver"],
        "silver_in_train": v1["silver"],
        "silver_left_out": v1["silver_left_out"],
        "splits_v1": v1["splits"],
        "baseline_count_s": base["count_s"],
        "baseline_plain_read_s": base["plain_read_s"],
        "freeze_v1_s": v1["freeze_s"],
        "freeze_v1_vs_plain_read": round(v1["freeze_s"] / base["plain_read_s"], 1),
        "freeze_v1_posts_per_s": round((gen["gold_posts"] + gen["silver_candidates"]) / v1["freeze_s"]),
        "freeze_v2_with_diff_s": v2["freeze_s"],
        "freeze_v2_diff": {"posts": v2["diff_posts"], "spans": v2["diff_spans"], "spans_edited": v2["spans_edited"]},
        "v2_sha256_differs": v2["sha256"] != v1["sha256"],
        "export_v1_s": export["export_s"],
        "export_baseline_items_read_s": items["items_read_s"],
        "export_vs_items_read": round(export["export_s"] / items["items_read_s"], 1),
        "export_bytes": export["bytes"],
        "export_verified": export["verified_sha256"] == v1["sha256"],
        "peak_rss_mb": {"baseline": base["peak_rss_mb"], "freeze_v1": v1["peak_rss_mb"],
                        "export_v1": export["peak_rss_mb"], "freeze_v2": v2["peak_rss_mb"],
                        "freeze_v3_traced": traced["peak_rss_mb"]},
        "rss_after_django_setup_mb": base["rss_start_mb"],
        "freeze_tracemalloc_peak_mb": traced["tracemalloc_peak_mb"],
        "freeze_traced_s": traced["freeze_traced_s"],
        "peak_rss_under_500_mb": peak < 500,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
