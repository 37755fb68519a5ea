"""The JSON API: ingest throughput against `import_posts` on the same file, and /api/extract latency.

    .venv/bin/python bench/api.py [--posts 5000] [--batch 500] [--rounds 2] [--requests 100] [--artifact DIR]

Runs on the configured database (DATABASE_URL; SQLite by default), in its test database (created and
dropped here, as pytest does), with the demo KB loaded. It writes one JSONL file of synthetic posts in
the interchange format (a third of them labelled, so gold annotations and spans are made too) and, each
round, from an empty post table:

- import_posts: `python manage.py import_posts FILE` in this process (the baseline);
- api: the same rows, POST /api/posts in batches of --batch, one request after another, through a real
  HTTP server (wsgiref, one thread) in this process, with a write token.

Then POST /api/extract with 32 of those texts per request, --requests times after a warm-up: p50/p95 with
the gazetteer model, next to the gazetteer called in-process on the same texts; and with the promoted
generation when a trained one is found (--artifact, else the newest under var/models; registered and
promoted in the test database). API_RATE_LIMIT is off for the run: the bench measures the API, not the limit.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BRANDS = [("SK-II", "SK2", "skincare"), ("La Mer", "la mer", "skincare"), ("Fenty Beauty", "fenty", "makeup"),
          ("The Ordinary", "the ordinary", "skincare"), ("Glossier", "glossier", "makeup"),
          ("Olaplex", "olaplex", "haircare"), ("OPI", "OPI", "nails"), ("Le Labo", "le labo", "fragrance")]
FILLERS = ["loving my", "finally tried", "ngl", "worth it?", "💄", "✨", "vs", "haul from", "#skincare", "tbh",
           "my holy grail", "美白", "dupe for", "restock", "grwm with"]
EXTRACT_BATCH = 32


def setup(var_dir: Path) -> None:
    os.environ.setdefault("BEAUTYBRAIN_VAR_DIR", str(var_dir))
    os.environ["DJANGO_SETTINGS_MODULE"] = "beautybrain_app.settings"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["API_RATE_LIMIT"] = "0"
    import django

    django.setup()


def make_rows(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        parts, brands = [f"#{i}"], []
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            parts.append(rng.choice(FILLERS))
            canonical, written, category = rng.choice(BRANDS)
            start = len(" ".join(parts)) + 1
            parts.append(written)
            brands.append({"start": start, "end": start + len(written), "text": written, "brand": canonical,
                           "category": category})
        parts += rng.sample(FILLERS, 3)
        row = {"id": f"b-{i}", "platform": rng.choice(("tiktok", "instagram", "xhs")), "text": " ".join(parts),
               "posted_at": f"2026-0{1 + i % 9}-{1 + i % 28:02d}T10:00:00Z"}
        if i % 3 == 0:
            row.update(is_beauty=bool(brands), brands=brands)
        rows.append(row)
    return rows


def wipe() -> None:
    from annotation.models import ImportBatch, Post

    Post.objects.all().delete()  # annotations, spans and predictions go with them
    ImportBatch.objects.all().delete()


def serve():
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from django.core.wsgi import get_wsgi_application

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    from django.db import connections

    def run():
        server.serve_forever()
        connections.close_all()  # this thread's (persistent) connection, so the test database can be dropped

    server = make_server("127.0.0.1", 0, get_wsgi_application(), server_class=WSGIServer, handler_class=Quiet)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.server_address[1]}"


def call(url: str, token: str, body: dict) -> tuple[dict, float]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{url}: {exc.code} {exc.read()[:500]!r}") from exc
    return payload, time.perf_counter() - started


def time_import(path: Path, n: int) -> float:
    from django.core.management import call_command

    from annotation.models import Post

    wipe()
    started = time.perf_counter()
    call_command("import_posts", str(path), stdout=open(os.devnull, "w"))
    elapsed = time.perf_counter() - started
    if Post.objects.count() != n:
        raise RuntimeError(f"import_posts stored {Post.objects.count()} of {n} posts")
    return elapsed


def time_api(base: str, token: str, rows: list[dict], batch: int) -> float:
    from annotation.models import Post

    wipe()
    created = 0
    started = time.perf_counter()
    for i in range(0, len(rows), batch):
        body, _ = call(f"{base}/api/posts", token, {"posts": rows[i:i + batch]})
        if body["errors"]:
            raise RuntimeError(f"API refused rows: {body['errors'][:3]}")
        created += body["created"]
    elapsed = time.perf_counter() - started
    if created != len(rows) or Post.objects.count() != len(rows):
        raise RuntimeError(f"API stored {Post.objects.count()} of {len(rows)} posts")
    return elapsed


def percentiles(seconds: list[float]) -> dict:
    ms = sorted(s * 1000 for s in seconds)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50_ms": round(statistics.median(ms), 2), "p95_ms": round(q[94], 2), "requests": len(ms)}


def time_extract(base: str, token: str, texts: list[str], model: str, requests: int, warmup: int = 5) -> dict:
    batches = [texts[(i * EXTRACT_BATCH) % len(texts):][:EXTRACT_BATCH] for i in range(requests + warmup)]
    batches = [b if len(b) == EXTRACT_BATCH else texts[:EXTRACT_BATCH] for b in batches]
    seconds = []
    for i, batch in enumerate(batches):
        body, elapsed = call(f"{base}/api/extract", token, {"texts": batch, "model": model})
        if len(body["results"]) != EXTRACT_BATCH:
            raise RuntimeError(f"extract answered {len(body['results'])} results")
        if i >= warmup:
            seconds.append(elapsed)
    return {**percentiles(seconds), "model": body["model"]}


def time_in_process(texts: list[str], requests: int) -> dict:
    from modeling.predictors import get_predictor

    seconds = []
    for i in range(requests):
        batch = texts[(i * EXTRACT_BATCH) % (len(texts) - EXTRACT_BATCH):][:EXTRACT_BATCH]
        started = time.perf_counter()
        get_predictor("gazetteer").predict(batch)  # as the view does: a predictor per request
        seconds.append(time.perf_counter() - started)
    return percentiles(seconds)


def promote_artifact(given: str) -> str | None:
    if not given and not list((ROOT / "var" / "models").glob("gen-*/adapter")):
        return None
    from bench.student_common import newest_artifact

    from annotation.models import DatasetVersion
    from modeling.models import ModelGeneration

    artifact = newest_artifact(given)
    dataset = DatasetVersion.objects.create(number=9001)
    ModelGeneration.objects.create(number=901, base_model="bench", dataset_version=dataset, artifact_path=artifact,
                                   status=ModelGeneration.Status.PROMOTED)
    return artifact


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2, help="each path runs this often; the best time counts")
    parser.add_argument("--requests", type=int, default=100, help="measured /api/extract requests per model")
    parser.add_argument("--artifact", default="", help="a trained generation to serve as the promoted one")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bb-bench-api-"))
    setup(work / "var")
    from django.conf import settings
    from django.db import connection

    from annotation.services.demo import KB_FILES
    from api.services import api_token_create
    from kb.services import brands_import_csv

    engine = connection.vendor
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    server = None
    try:
        for name in KB_FILES:
            with (ROOT / "data" / "demo" / name).open(encoding="utf-8") as f:
                brands_import_csv(stream=f)
        rows = make_rows(args.posts)
        path = work / "posts.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        _, token = api_token_create(name="bench", scope="write")
        server, thread, base = serve()

        import_s, api_s = [], []
        for _ in range(args.rounds):
            import_s.append(time_import(path, len(rows)))
            api_s.append(time_api(base, token, rows, args.batch))
            print(f"import_posts {import_s[-1]:.2f} s, API {api_s[-1]:.2f} s for {len(rows)} posts", flush=True)
        import_rate, api_rate = len(rows) / min(import_s), len(rows) / min(api_s)
        figures = {
            "database": engine, "posts": len(rows), "batch": args.batch, "rounds": args.rounds,
            "labelled_share": round(sum("brands" in r for r in rows) / len(rows), 3),
            "import_posts_per_s": round(import_rate, 1), "api_ingest_posts_per_s": round(api_rate, 1),
            "api_vs_import_ratio": round(api_rate / import_rate, 3),
            "api_resend_posts_per_s": None,
        }
        # Re-sending everything (all duplicates): what an idempotent retry of a whole load costs.
        started = time.perf_counter()
        for i in range(0, len(rows), args.batch):
            body, _ = call(f"{base}/api/posts", token, {"posts": rows[i:i + args.batch]})
            assert body["created"] == 0, body
        figures["api_resend_posts_per_s"] = round(len(rows) / (time.perf_counter() - started), 1)

        texts = [r["text"] for r in rows]
        gazetteer = time_extract(base, token, texts, "gazetteer", args.requests)
        in_process = time_in_process(texts, args.requests)
        figures["extract_texts_per_request"] = EXTRACT_BATCH
        figures["extract_gazetteer_p50_ms"] = gazetteer["p50_ms"]
        figures["extract_gazetteer_p95_ms"] = gazetteer["p95_ms"]
        figures["gazetteer_in_process_p50_ms"] = in_process["p50_ms"]
        figures["gazetteer_in_process_p95_ms"] = in_process["p95_ms"]
        figures["extract_api_overhead_p50_ms"] = round(gazetteer["p50_ms"] - in_process["p50_ms"], 2)
        artifact = promote_artifact(args.artifact)
        if artifact:
            promoted = time_extract(base, token, texts, "promoted", args.requests)
            figures.update(extract_promoted_model=promoted["model"], extract_promoted_p50_ms=promoted["p50_ms"],
                           extract_promoted_p95_ms=promoted["p95_ms"], promoted_artifact=artifact)
        else:
            figures["extract_promoted_p50_ms"] = None
            figures["extract_promoted_note"] = "no trained generation found (pass --artifact DIR)"
        figures["torch_threads"] = settings.TORCH_THREADS
    finally:
        if server is not None:
            server.shutdown()
            thread.join(timeout=30)
        connection.creation.destroy_test_db(test_db, verbosity=0)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
