"""Stream every analyst report over 1,000,000 synthetic brand mentions on PostgreSQL.

    .venv/bin/python bench/reports.py [--mentions 1000000] [--keep]

Creates its own database (bb_bench_reports on 127.0.0.1:5432, user postgres; PG_BENCH_URL and
PG_BENCH_DB override),
migrates it, fills it with COPY, then measures each report in a fresh child process through the real
download view (filters parsed, CSV streamed, every byte read), so each peak RSS is that report's alone.
Baselines in the same run: a plain count(*) of the rows holding the mentions, and streaming those raw
rows through the same server-side cursor without any report work. "cube_refresh" rebuilds the
materialised aggregates (reports/cube.py) the page reads; "page" is then the reports page computed from
them, uncached (no page cache; `page_uncached_s`, target <= 2 s), "page_filters" five other filter sets
(median and max), "page_stream" the page from one pass over the mentions (REPORTS_CUBE=0, as before the
cube), and "page_cached" a second view of the page (REPORTS_PAGE_CACHE_SECONDS). The last line is one
JSON object.

Data: 4% of posts have gold annotations (spans in a table), the rest a promoted student generation's
predictions (spans in JSON), 2.5 mentions a post on average, a Zipf-like brand mix where a few brands
grow over the year and 5% of mentions are unlinked; 5% of posts have no date.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from kb.rules import CATEGORY_SLUGS  # noqa: E402 - after the path: the benchmarks run as scripts

DB_NAME = os.environ.get("PG_BENCH_DB", "bb_bench_reports")
SERVER_URL = os.environ.get("PG_BENCH_URL", "postgres://postgres@127.0.0.1:5432")
DB_URL = f"{SERVER_URL}/{DB_NAME}"
KINDS = ("mentions", "brand_summary", "co_mentions", "emerging")
PLATFORMS = ("tiktok", "instagram", "reddit", "twitter")
CATEGORIES = CATEGORY_SLUGS
N_BRANDS = 300
GOLD_SHARE = 0.04
YEAR_START = datetime(2025, 1, 1, tzinfo=dt_timezone.utc)
FILTER_SETS = [{"brand": "Brand 007"}, {"date_from": "2025-03-10", "date_to": "2025-08-20"},
               {"platform": "tiktok", "category": "skincare"}, {"source": "gold", "bucket": "day"},
               {"bucket": "month"}]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def django_setup() -> None:
    os.environ["DATABASE_URL"] = DB_URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beautybrain_app.settings")
    os.environ.setdefault("BEAUTYBRAIN_VAR_DIR", str(ROOT / "var" / "bench-reports"))
    os.environ["DEBUG"] = "1"
    import django

    django.setup()


# --- database --------------------------------------------------------------------------------

def database_recreate() -> None:
    import psycopg

    with psycopg.connect(f"{SERVER_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def database_drop() -> None:
    import psycopg

    with psycopg.connect(f"{SERVER_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def copy_rows(model, rows) -> int:
    """COPY dicts of field values into a model's table; every other column gets the field's default,
    so the bench keeps working when someone adds a field."""
    from django.db import connection
    from django.utils import timezone

    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return 0
    pk = model._meta.pk
    fields = [f for f in model._meta.concrete_fields if f is not pk or pk.attname in first]
    now = timezone.now()
    defaults = {f.attname: now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
                else f.get_default() for f in fields}
    count = 0
    with connection.cursor() as cursor:
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        with cursor.cursor.copy(f"COPY {connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN") as cp:
            for values in itertools.chain([first], rows):
                cp.write_row([f.get_db_prep_save(values.get(f.attname, defaults[f.attname]), connection)
                              for f in fields])
                count += 1
    return count


def sequence_reset(model) -> None:
    from django.db import connection

    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")


def data_generate(target_mentions: int, seed: int = 7) -> dict:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection, transaction

    from annotation.models import Annotation, DatasetVersion, Post, Prediction, Span
    from beautybrain_app.roles import roles_ensure
    from kb.models import Brand, Category
    from modeling.models import ModelGeneration

    rng = random.Random(seed)
    roles_ensure()
    User = get_user_model()
    annotator = User.objects.create_user("bench-annotator", password="bench-only-password-1")
    analyst = User.objects.create_user("bench-analyst", password="bench-only-password-1")
    analyst.groups.add(Group.objects.get(name="analyst"))
    categories = [Category.objects.create(slug=s, name=s.title(), position=i) for i, s in enumerate(CATEGORIES)]
    brands = Brand.objects.bulk_create([
        Brand(canonical_name=f"Brand {i:03d}", slug=f"brand-{i:03d}", category=categories[i % len(categories)])
        for i in range(N_BRANDS)
    ])
    dataset = DatasetVersion.objects.create(number=1)
    ModelGeneration.objects.create(number=1, base_model="bench", dataset_version=dataset, status="promoted")
    unlinked = [f"Indie{i:03d}" for i in range(200)]
    # Zipf-like popularity; every 25th brand grows through the year (the "emerging" ones).
    cumulative_by_day = []
    for day in range(365):
        weights = [(1 / (i + 1) ** 0.9) * ((0.05 + 3 * day / 365) if i % 25 == 7 else 1) for i in range(N_BRANDS)]
        cumulative_by_day.append(list(itertools.accumulate(weights)))

    def pick_brand(day: int):
        if rng.random() < 0.05:
            return None
        cumulative = cumulative_by_day[day]
        return brands[bisect.bisect(cumulative, rng.random() * cumulative[-1])]

    n_posts = int(target_mentions / 2.5)
    n_gold = int(n_posts * GOLD_SHARE)
    started = time.perf_counter()
    posts_meta = []  # (post_id, day or None)

    def post_rows():
        for pid in range(1, n_posts + 1):
            day = rng.randrange(365) if rng.random() > 0.05 else None
            posts_meta.append(day)
            moment = YEAR_START + timedelta(days=day, seconds=rng.randrange(86400)) if day is not None else None
            yield {"id": pid, "platform": PLATFORMS[pid % len(PLATFORMS)], "external_id": f"bench-{pid}",
                   "posted_at": moment, "text": f"bench post {pid}", "content_hash": f"{pid:064x}"}

    def mentions_for(pid: int):
        count = 1 + (pid % 4)  # 1, 2, 3, 4: 2.5 on average, and every post has at least one
        day = posts_meta[pid - 1]
        out = []
        for _ in range(count):
            brand = pick_brand(day if day is not None else 180)
            if brand is None:
                name = rng.choice(unlinked)
                out.append((None, name, CATEGORIES[hash(name) % len(CATEGORIES)], name))
            else:
                out.append((brand, brand.canonical_name, brand.category.slug, brand.canonical_name.lower()))
        return out

    def prediction_rows():
        for pid in range(n_gold + 1, n_posts + 1):
            spans = [{"start": 10 * i, "end": 10 * i + len(text), "text": text,
                      "brand": brand.canonical_name if brand else None, "brand_id": brand.pk if brand else None,
                      "category": category, "confidence": round(rng.uniform(0.5, 1.0), 3)}
                     for i, (brand, _name, category, text) in enumerate(mentions_for(pid))]
            yield {"post_id": pid, "source": "student", "model_version": "gen-1", "spans": spans,
                   "status": "ok", "brand_count": len(spans)}

    category_ids = {c.slug: c.pk for c in categories}

    def annotation_rows():
        for pid in range(1, n_gold + 1):
            yield {"id": pid, "post_id": pid, "annotator_id": annotator.pk, "status": "accepted",
                   "origin": "import", "is_gold": True}

    def span_rows():
        for pid in range(1, n_gold + 1):
            for i, (brand, name, category, text) in enumerate(mentions_for(pid)):
                yield {"annotation_id": pid, "start": 10 * i, "end": 10 * i + len(text), "text": text,
                       "brand_id": brand.pk if brand else None, "brand_text": "" if brand else name,
                       "category_id": category_ids[category]}

    with transaction.atomic():
        copy_rows(Post, post_rows())
        copy_rows(Annotation, annotation_rows())
        spans = copy_rows(Span, span_rows())
        predictions = copy_rows(Prediction, prediction_rows())
    for model in (Post, Annotation):
        sequence_reset(model)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    mentions = spans + sum(1 + (pid % 4) for pid in range(n_gold + 1, n_posts + 1))
    return {"posts": n_posts, "gold_posts": n_gold, "gold_mentions": spans, "predictions": predictions,
            "mentions": mentions, "generate_s": round(time.perf_counter() - started, 1)}


# --- measurements (each in its own process) ------------------------------------------------------

def measure(kind: str) -> dict:
    django_setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from annotation.models import Prediction, Span

    rss_start = peak_rss_mb()
    if kind == "baseline_count":
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM annotation_span")
            spans = cursor.fetchone()[0]
            cursor.execute("SELECT count(*), sum(jsonb_array_length(spans)) FROM annotation_prediction "
                           "WHERE status = 'ok'")
            predictions, predicted = cursor.fetchone()
        return {"kind": kind, "seconds": round(time.perf_counter() - started, 3),
                "rows": spans + predictions, "mentions": spans + predicted,
                "peak_rss_mb": round(peak_rss_mb(), 1), "rss_after_setup_mb": round(rss_start, 1)}
    if kind == "baseline_stream":
        # The same rows, cursor chunking and transaction the reports read, with no report work on top.
        from django.db import transaction

        started, cpu_start = time.perf_counter(), cpu_seconds()
        mentions = 0
        with transaction.atomic():
            for row in Span.objects.values_list("annotation__post_id", "annotation__post__posted_at", "brand_id",
                                                "text").iterator(chunk_size=2000):
                mentions += 1
            for row in Prediction.objects.filter(status="ok").values_list(
                    "post_id", "post__posted_at", "spans").iterator(chunk_size=2000):
                mentions += len(row[2])
        return {"kind": kind, "seconds": round(time.perf_counter() - started, 3),
                "cpu_s": round(cpu_seconds() - cpu_start, 2), "mentions": mentions,
                "peak_rss_mb": round(peak_rss_mb(), 1), "rss_after_setup_mb": round(rss_start, 1)}

    if kind == "cube_refresh":
        from reports.cube import cube_refresh

        started, cpu_start = time.perf_counter(), cpu_seconds()
        state = cube_refresh(force=True)
        return {"kind": kind, "seconds": round(time.perf_counter() - started, 3),
                "cpu_s": round(cpu_seconds() - cpu_start, 2), "cells": state.cells, "pairs": state.pairs,
                "peak_rss_mb": round(peak_rss_mb(), 1), "rss_after_setup_mb": round(rss_start, 1)}

    client = Client()
    client.force_login(get_user_model().objects.get(username="bench-analyst"))
    query = {"bucket": "week"}
    if kind == "page_filters":
        # Other views an analyst opens, each computed from the database (no page cache).
        times = []
        for extra in FILTER_SETS:
            started = time.perf_counter()
            response = client.get("/reports/", query | extra)
            assert response.status_code == 200 and b"The data changed since" not in response.content
            times.append(time.perf_counter() - started)
        return {"kind": kind, "seconds": round(statistics.median(times), 3), "max_s": round(max(times), 3),
                "cpu_s": 0.0, "views": len(times), "peak_rss_mb": round(peak_rss_mb(), 1),
                "rss_after_setup_mb": round(rss_start, 1)}
    started, cpu_start = time.perf_counter(), cpu_seconds()
    if kind == "page_cached":
        assert client.get("/reports/", query).status_code == 200  # fills the cache (if not already)
        started, cpu_start = time.perf_counter(), cpu_seconds()
        kind = "page"
    if kind == "page":
        response = client.get("/reports/", query)
        assert response.status_code == 200, response.status_code
        assert b"The data changed since" not in response.content  # the cube was fresh: figures are current
        return {"kind": kind, "seconds": round(time.perf_counter() - started, 3),
                "cpu_s": round(cpu_seconds() - cpu_start, 2), "bytes": len(response.content),
                "peak_rss_mb": round(peak_rss_mb(), 1), "rss_after_setup_mb": round(rss_start, 1)}
    response = client.get(f"/reports/{kind}.csv", query)
    assert response.status_code == 200, response.status_code
    first_byte = None
    size = lines = 0
    for chunk in response.streaming_content:
        if first_byte is None:
            first_byte = time.perf_counter() - started
        size += len(chunk)
        lines += chunk.count(b"\n")
    return {"kind": kind, "seconds": round(time.perf_counter() - started, 3),
            "cpu_s": round(cpu_seconds() - cpu_start, 2), "first_byte_s": round(first_byte, 3), "bytes": size,
            "rows": lines - 1,
            "peak_rss_mb": round(peak_rss_mb(), 1), "rss_after_setup_mb": round(rss_start, 1)}


def run_child(kind: str) -> dict:
    # Every measurement computes from the database, except page_cached: a second view of the same page.
    cache_seconds = "300" if kind == "page_cached" else "0"
    env = os.environ | {"DATABASE_URL": DB_URL, "REPORTS_PAGE_CACHE_SECONDS": cache_seconds}
    if kind == "page_stream":  # the page without the cube: one pass over the mentions, as before
        kind, env = "page", env | {"REPORTS_CUBE": "0"}
    out = subprocess.run([sys.executable, __file__, "--child", kind], capture_output=True, text=True, cwd=ROOT,
                         env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mentions", type=int, default=1_000_000)
    parser.add_argument("--child")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="measure an existing bench database")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return 0

    # The machine is shared: the load average says how much the wall times are inflated by others.
    figures: dict = {"database": "postgresql", "rss_limit_mb": 300, "cpus": os.cpu_count(),
                     "loadavg_start": round(os.getloadavg()[0], 2)}
    if not args.reuse:
        database_recreate()
        env = os.environ | {"DATABASE_URL": DB_URL, "BEAUTYBRAIN_VAR_DIR": str(ROOT / "var" / "bench-reports")}
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        django_setup()
        figures["data"] = data_generate(args.mentions)
        print(f"data: {figures['data']}", file=sys.stderr)
    try:
        results = {}
        for kind in ("baseline_count", "baseline_stream", *KINDS, "page_stream", "cube_refresh", "page",
                     "page_filters", "page_cached"):
            results[kind] = run_child(kind)
            print(f"{kind}: {results[kind]}", file=sys.stderr)
        base = results["baseline_stream"]["seconds"]
        figures["baseline_count_s"] = results["baseline_count"]["seconds"]
        figures["baseline_stream_s"] = base
        figures["baseline_stream_cpu_s"] = results["baseline_stream"]["cpu_s"]
        figures["mentions_counted"] = results["baseline_count"]["mentions"]
        figures["baseline_stream_peak_rss_mb"] = results["baseline_stream"]["peak_rss_mb"]
        for kind in (*KINDS, "page_stream", "cube_refresh", "page", "page_filters", "page_cached"):
            r = results[kind]
            figures[kind] = {k: v for k, v in r.items() if k != "kind"} | {
                "x_baseline_stream": round(r["seconds"] / base, 2),
                "cpu_x_baseline_stream": round(r["cpu_s"] / max(results["baseline_stream"]["cpu_s"], 1e-3), 2),
                "x_baseline_count": round(r["seconds"] / max(figures["baseline_count_s"], 1e-3), 1),
            }
        figures["page_uncached_s"] = results["page"]["seconds"]
        figures["page_uncached_ok"] = results["page"]["seconds"] <= 2 and results["page_filters"]["max_s"] <= 2
        figures["page_stream_vs_cube"] = round(results["page_stream"]["seconds"] / results["page"]["seconds"], 1)
        figures["max_peak_rss_mb"] = max(r["peak_rss_mb"] for r in results.values())
        figures["rss_ok"] = figures["max_peak_rss_mb"] < 300
        figures["loadavg_end"] = round(os.getloadavg()[0], 2)
    finally:
        if not args.keep:
            database_drop()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
