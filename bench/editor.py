"""Server time of the span editor's save request on a database of 100,000 posts, next to a trivial htmx
view measured in the same run.

    .venv/bin/python bench/editor.py [--posts 100000] [--saves 500] [--keep]

Creates a temporary SQLite database (the embedded default: WAL, IMMEDIATE transactions), migrates it,
loads a small KB through the real CSV import and fills 100k synthetic posts with bulk_create (emoji/CJK
text, teacher and gazetteer predictions on a third of them, queue priorities). Then, through Django's
test client (the whole middleware stack: session, auth, CSRF, htmx; DEBUG off), one annotator:

- saves spans: `--saves` POSTs (form-encoded, as htmx sends them) to the editor's change endpoint,
  alternating "add a span" and "set its category" on successive posts, each answered with the
  re-rendered span list as the real page gets it;
- asks for the trivial view: the keyboard-help partial (login required, renders a template, no query
  of its own), interleaved one for one with the saves so a neighbour's load hits both alike;
- asks the work queue for its next post 100 times (each pick writes an assignment).

Server time = wall time of the WSGI application call (request object, middleware, view, response),
timed around the test client's handler, so the client's own work (encoding the request, keeping
cookies) is not counted. Last line: one JSON object of figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHUNK = 5000
KB_CSV = """canonical_name,aliases,category
SK-II,SKII|SK2,skincare
La Mer,LaMer,skincare
Shiseido,資生堂,skincare
Fenty Beauty,Fenty,makeup
Glossier,,makeup
Rare Beauty,,makeup
Olaplex,,haircare
Le Labo,,fragrance
OPI,,nails
CeraVe,,skincare
"""
BRANDS = ["Glossier", "SK2", "La Mer", "Fenty", "資生堂", "Rare Beauty", "Olaplex", "Le Labo", "OPI", "CeraVe"]
FILLERS = ["loving my", "finally tried", "ngl", "💄", "✨💅🏽", "vs", "haul from", "#skincare", "tbh", "my holy grail",
           "美白", "dupe for", "obsessed w", "👩‍👩‍👧"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def ms(values: list[float]) -> dict:
    return {"p50_ms": round(percentile(values, 0.5) * 1000, 2), "p95_ms": round(percentile(values, 0.95) * 1000, 2),
            "mean_ms": round(statistics.fmean(values) * 1000, 2), "n": len(values)}


def make_post(rng: random.Random, i: int) -> tuple[str, list[tuple[int, int]]]:
    parts = [rng.choice(FILLERS), f"#{i}"]
    mentions = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        parts.append(rng.choice(FILLERS))
        brand = rng.choice(BRANDS)
        start = len(" ".join(parts)) + 1
        parts.append(brand)
        mentions.append((start, start + len(brand)))
    parts += rng.sample(FILLERS, 3)
    return " ".join(parts), mentions


def generate(n_posts: int) -> dict:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from annotation.models import Post, Prediction
    from annotation.services.importing import content_hash
    from annotation.services.queue import post_priority_refresh
    from kb.services import brands_import_csv

    brands_import_csv(stream=io.StringIO(KB_CSV))
    rng = random.Random(7)
    started = time.perf_counter()
    predicted: list[int] = []
    for base in range(0, n_posts, CHUNK):
        posts, preds = [], []
        for i in range(base, min(base + CHUNK, n_posts)):
            text, mentions = make_post(rng, i)
            pid = i + 1
            posts.append(Post(id=pid, platform="tiktok", external_id=f"tt-{i}", text=text, content_hash=content_hash(text)))
            if i % 3 == 0:
                spans = [{"start": s, "end": e, "text": text[s:e], "brand": None, "category": "skincare"} for s, e in mentions]
                preds.append(Prediction(post_id=pid, source="teacher", model_version="gemini-2.5-flash", spans=spans,
                                        is_beauty=True, reasoning="synthetic", confidence=rng.random()))
                preds.append(Prediction(post_id=pid, source="gazetteer", model_version="kb-1", spans=spans[: rng.randint(0, len(spans))],
                                        is_beauty=True))
                predicted.append(pid)
        Post.objects.bulk_create(posts)
        Prediction.objects.bulk_create(preds)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    post_priority_refresh(post_ids=predicted)
    return {"generate_s": round(generated, 1), "priority_refresh_s": round(time.perf_counter() - started, 1),
            "posts": n_posts, "posts_prelabelled": len(predicted)}


class ServerClock:
    """Times each call of the test client's WSGI handler: the server's share of a request."""

    def __init__(self):
        from django.test import client

        self.last = 0.0
        original = client.ClientHandler.__call__
        clock = self

        def timed(handler, environ):
            t0 = time.perf_counter()
            try:
                return original(handler, environ)
            finally:
                clock.last = time.perf_counter() - t0

        client.ClientHandler.__call__ = timed


def measure(n_saves: int) -> dict:
    from django.contrib.auth.models import Group, User
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from annotation.models import Annotation, Assignment, Post
    from beautybrain_app.roles import roles_ensure
    from kb.models import Category

    clock = ServerClock()
    roles_ensure()
    user = User.objects.create_user("bench-annotator", password="x")
    user.groups.add(Group.objects.get(name="annotator"))
    client = Client(HTTP_X_FORWARDED_PROTO="https")  # production settings redirect plain HTTP
    client.force_login(user)
    headers = {"HTTP_HX_REQUEST": "true"}
    categories = list(Category.objects.values_list("pk", flat=True))

    # Warm-up (template loading, KB index, first connection) is not measured.
    help_url = reverse("editor_help")
    for _ in range(20):
        client.get(help_url, **headers)

    posts = list(Post.objects.filter(pk__gt=Post.objects.count() // 2).order_by("pk")[: n_saves // 2 + 5])
    for p in posts:
        Assignment.objects.create(post=p, annotator=user, expires_at=timezone.now() + timezone.timedelta(days=1))
    rng = random.Random(3)
    save_times, trivial_times, statuses = [], [], []
    warm = posts[0]
    client.get(reverse("editor", args=[warm.pk]))
    for p in posts[: n_saves // 2]:
        opened = client.get(reverse("editor", args=[p.pk]))  # creates the draft, as opening the page does
        assert opened.status_code == 200, (opened.status_code, opened.content[:300])
        version = Annotation.objects.get(post=p, annotator=user).version
        # The first brand mention of the post: the save goes through linking like a real one.
        start, brand = min((p.text.find(b), b) for b in BRANDS if b in p.text)
        end = start + len(brand)
        url = reverse("editor_change", args=[p.pk])
        for data in ({"op": "add", "start": start, "end": end},
                     {"op": "update", "start": start, "end": end, "category_id": rng.choice(categories)}):
            # Form-encoded, as htmx sends it (the test client would default to multipart).
            body = urlencode({**data, "version": version, "active_ms": 1200})
            r = client.post(url, body, content_type="application/x-www-form-urlencoded", **headers)
            save_times.append(clock.last)
            statuses.append(r.status_code)
            version += 1
            client.get(help_url, **headers)
            trivial_times.append(clock.last)

    queue_times = []
    queue_url = reverse("queue")
    for _ in range(100):
        Assignment.objects.filter(annotator=user, completed_at__isnull=True).update(completed_at=timezone.now())
        r = client.get(queue_url)
        queue_times.append(clock.last)
        assert r.status_code == 302, r.status_code
    bad = [s for s in statuses if s != 200]
    if bad:
        raise SystemExit(f"{len(bad)} saves failed: {bad[:5]}")
    save, trivial = ms(save_times), ms(trivial_times)
    return {
        "span_save": save, "trivial_htmx_view": trivial, "queue_next": ms(queue_times),
        "p95_ratio_save_to_trivial": round(save["p95_ms"] / trivial["p95_ms"], 2),
        "p50_ratio_save_to_trivial": round(save["p50_ms"] / trivial["p50_ms"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--saves", type=int, default=500)
    parser.add_argument("--keep", action="store_true", help="keep the temporary database")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-editor-"))
    os.environ.update({
        "BEAUTYBRAIN_VAR_DIR": str(workdir / "var"), "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "beautybrain_app.settings", "LOG_LEVEL": "ERROR", "DEBUG": "false",
        "SECRET_KEY": "bench-only-" + os.urandom(8).hex(),
    })
    import django

    django.setup()
    try:
        figures = {"bench": "editor", **generate(args.posts), **measure(args.saves)}
        figures["targets_met"] = (figures["span_save"]["p95_ms"] <= 50 and figures["p95_ratio_save_to_trivial"] <= 2)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
