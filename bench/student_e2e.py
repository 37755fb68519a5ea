"""End to end through Django: demo KB + gold_seed as gold + the teacher's answers for posts_unlabelled stored
as teacher predictions → freeze → train a generation with the CPU default (sync) → the side-by-side metrics.

    BEAUTYBRAIN_VAR_DIR=var/student-e2e python bench/student_e2e.py [--epochs 3]

Uses its own VAR_DIR (a fresh SQLite database). Last line: one JSON object of figures."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--config", default="{}", help="StudentConfig overrides as JSON")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beautybrain_app.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from annotation.models import Post, Prediction
    from annotation.services.datasets import dataset_freeze_now
    from annotation.services.demo import demo_load
    from modeling.models import ModelGeneration
    from modeling.services.generations import generation_create, generation_train
    from modeling.student.demo import read_jsonl
    from modeling.student.text import align_mentions

    demo_load(log=lambda m: None)
    posts = {p.external_id: p for p in Post.objects.all()}
    for answer in read_jsonl(ROOT / "data" / "demo" / "teacher_answers.jsonl"):
        post = posts.get(answer["id"])
        if post is None:
            continue
        spans = align_mentions(post.text, answer.get("mentions") or [])
        Prediction.objects.get_or_create(
            post=post, source=Prediction.Source.TEACHER, model_version="teacher_answers.jsonl", prompt_version="demo",
            defaults={"spans": spans or [], "is_beauty": answer.get("is_beauty"), "reasoning": answer.get("reasoning", ""),
                      "brand_count": len(spans or []),
                      "status": Prediction.Status.OK if spans is not None else Prediction.Status.INVALID})
    version = dataset_freeze_now(note="student e2e bench")
    t = time.monotonic()
    generation = generation_create(dataset_version=version, epochs=args.epochs, config=json.loads(args.config),
                                   enqueue=False)
    status = generation_train(generation_id=generation.pk)
    generation = ModelGeneration.objects.get(pk=generation.pk)
    figures = {"status": status, "generation": generation.number, "dataset_version": version.number,
               "counts": version.counts, "wall_seconds": round(time.monotonic() - t, 1), "error": generation.error,
               **{k: generation.metrics.get(k) for k in ("student", "gazetteer", "teacher", "training", "test_posts")}}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
