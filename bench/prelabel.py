"""Teacher pre-labelling throughput: Celery workers against the local Gemini endpoint vs in-process.

    .venv/bin/python bench/prelabel.py [--concurrency 8] [--posts 200] [--slow-posts 64]

Creates its own var dir (SQLite + filesystem broker, the embedded default), its own posts, and a
local Gemini-compatible endpoint (modeling/teacher/fake_server.py) with 0 ms and 500 ms simulated
latency. For each latency: the in-process rate (`prelabel --sync`: one call after another, the
baseline measured in the same run) and the rate through one Celery worker on the `teacher` queue
with a thread pool of --concurrency, from enqueueing to the run's last post stored. Teacher calls
are I/O bound, so with 500 ms latency the worker should reach >= 0.8 x concurrency / 0.5 s.
The shared rate limit is set high (1000/s) so it is exercised but not the bottleneck. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_env(var_dir: Path, broker: str = "filesystem://") -> None:
    os.environ.update({
        "BEAUTYBRAIN_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "beautybrain_app.settings",
        "CELERY_BROKER_URL": broker, "GEMINI_API_KEY": "", "GEMINI_RATE_PER_S": "1000",
        "TEACHER_BUDGET_USD": "1000", "GEMINI_MAX_ATTEMPTS": "3", "DATABASE_URL": f"sqlite:///{var_dir / 'db.sqlite3'}",
    })
    for key in ("REDIS_URL", "CELERY_RESULT_BACKEND"):
        os.environ.pop(key, None)


def make_posts(tag: str, n: int) -> list[int]:
    from annotation.models import Post
    from annotation.services.importing import content_hash

    brands = ["OPI", "La Mer", "SK2", "CeraVe", "Clinique", "Maybelline", "Chanel", "Olay"]
    posts = []
    for i in range(n):
        text = f"[{tag} {i}] my {brands[i % 8]} haul, then {brands[(i * 3 + 1) % 8]} for the night routine"
        posts.append(Post(platform="bench", external_id=f"{tag}-{i}", text=text, content_hash=content_hash(text)))
    return [p.pk for p in Post.objects.bulk_create(posts)]


def run_rate(post_ids: list[int], *, sync: bool, timeout: float = 600) -> tuple[float, dict]:
    from annotation.models import Post
    from modeling.models import PrelabelRun
    from modeling.services.prelabel import prelabel_run_is_finished, prelabel_run_start

    posts = list(Post.objects.filter(pk__in=post_ids))
    started = time.perf_counter()
    run = prelabel_run_start(source="teacher", posts=posts, sync=sync)
    deadline = time.monotonic() + timeout
    while not prelabel_run_is_finished(run):
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run.pk} not finished after {timeout} s: {run.done}/{run.total}")
        time.sleep(0.05)
        run = PrelabelRun.objects.get(pk=run.pk)
    elapsed = time.perf_counter() - started
    if run.ok != len(post_ids):
        raise RuntimeError(f"run {run.pk}: {run.ok} ok of {len(post_ids)} ({run.status}: {run.message})")
    return len(post_ids) / elapsed, {"seconds": round(elapsed, 3), "posts": len(post_ids)}


def start_worker(var_dir: Path, concurrency: int, prefetch: int) -> subprocess.Popen:
    from beautybrain_app.celery import app

    log = open(var_dir / "worker.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "beautybrain_app", "worker", "-Q", "teacher", "-P", "threads",
         "-c", str(concurrency), "--prefetch-multiplier", str(prefetch), "-l", "WARNING", "-n", f"bench-{os.getpid()}@%h", "--without-mingle",
         "--without-gossip"],
        cwd=ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}; see {log.name}")
        try:
            if app.control.inspect(timeout=1).ping():
                return proc
        except Exception:  # noqa: BLE001 - the broker folder may still be empty
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("worker did not answer within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--posts", type=int, default=200, help="posts per measurement at 0 ms")
    parser.add_argument("--slow-posts", type=int, default=160, help="posts per Celery measurement at 500 ms")
    parser.add_argument("--slow-sync-posts", type=int, default=8, help="posts for the in-process rate at 500 ms")
    parser.add_argument("--prefetch", type=int, default=2, help="worker --prefetch-multiplier (as run_embedded)")
    parser.add_argument("--broker", default="filesystem://", help="e.g. redis://127.0.0.1:6379/13 (flushed first)")
    args = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="bb-bench-prelabel-"))
    setup_env(var_dir, args.broker)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from modeling.teacher.fake_server import FakeGemini, serve

    call_command("migrate", verbosity=0)
    fake = FakeGemini()
    server = serve(fake)
    settings.GEMINI_BASE_URL = os.environ["GEMINI_BASE_URL"] = f"http://127.0.0.1:{server.server_address[1]}"

    figures: dict = {"concurrency": args.concurrency, "prefetch_multiplier": args.prefetch, "pool": "threads", "broker": args.broker.split(":")[0],
                     "database": "sqlite"}
    if args.broker.startswith("redis"):
        from beautybrain_app.celery import app

        with app.connection_for_write() as conn:
            conn.default_channel.client.flushdb()
    worker = start_worker(var_dir, args.concurrency, args.prefetch)
    try:
        # Warm-up: SDK import, HTTP pools, worker threads (not measured).
        run_rate(make_posts("warm-sync", 4), sync=True)
        run_rate(make_posts("warm-celery", 2 * args.concurrency), sync=False)
        for latency in (0, 500):
            fake.latency_ms = latency
            fake.reset()
            n_sync = args.posts if latency == 0 else args.slow_sync_posts
            n_celery = args.posts if latency == 0 else args.slow_posts
            sync_rate, sync_info = run_rate(make_posts(f"sync-{latency}", n_sync), sync=True)
            celery_rate, celery_info = run_rate(make_posts(f"celery-{latency}", n_celery), sync=False)
            figures[f"inprocess_{latency}ms_posts_per_s"] = round(sync_rate, 2)
            figures[f"celery_{latency}ms_posts_per_s"] = round(celery_rate, 2)
            figures[f"celery_{latency}ms_speedup"] = round(celery_rate / sync_rate, 2)
            figures[f"celery_{latency}ms_max_in_flight"] = fake.stats()["max_in_flight"]
            print(f"latency {latency} ms: in-process {sync_rate:.2f} posts/s ({sync_info}), "
                  f"Celery {celery_rate:.2f} posts/s ({celery_info})", flush=True)
        target = 0.8 * args.concurrency / 0.5
        figures["latency_hidden_target_posts_per_s"] = target
        figures["latency_hidden"] = figures["celery_500ms_posts_per_s"] >= target
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        server.shutdown()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
