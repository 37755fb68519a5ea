"""Pre-labelling through a real Celery worker; on PostgreSQL + Redis, concurrent workers never pay twice."""

import time

import pytest
from django.core.management import call_command

from annotation.models import Post, Prediction
from annotation.services.importing import content_hash
from modeling.models import PrelabelRun
from modeling.services.prelabel import prelabel_run_create
from modeling.tasks import teacher_label_chunk
from modeling.services.teacher import redis_url
from modeling.teacher.ratelimit import FileRateLimiter, RedisRateLimiter
from tests.modeling.fake_gemini import fake_gemini, small_kb  # noqa: F401 - fixtures


def make_posts(n, prefix="OPI and La Mer"):
    return [Post.objects.create(platform="test", text=f"{prefix} #{i}", content_hash=content_hash(f"{prefix} #{i}"))
            for i in range(n)]


def wait_finished(*runs, seconds=90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for run in runs:
            run.refresh_from_db()
        if all(r.status in ("done", "stopped", "failed") for r in runs):
            return runs
        time.sleep(0.3)
    raise AssertionError(f"runs not finished: {[(r.pk, r.status, r.done, r.total) for r in runs]}")


@pytest.mark.django_db(transaction=True)
def test_prelabel_command_enqueues_chunks_and_follows_progress(small_kb, fake_gemini, celery_worker_process, capsys):
    make_posts(10)
    call_command("prelabel", "--source", "teacher", "--poll", "0.2", "--timeout", "90")
    out = capsys.readouterr().out
    run = PrelabelRun.objects.get()
    assert "(Celery)" in out and f"Run #{run.pk} done: 10/10 handled, 10 ok" in out
    assert "/10 (" in out  # at least one progress line while it ran
    assert fake_gemini.stats()["requests"] == 10
    assert Prediction.objects.filter(source="teacher", status="ok").count() == 10
    call_command("prelabel", "--source", "gazetteer", "--poll", "0.2", "--timeout", "90")
    assert "10/10 handled, 10 ok" in capsys.readouterr().out


@pytest.mark.pg
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("celery_worker_process", [4], indirect=True)
def test_concurrent_workers_never_label_the_same_post_twice(small_kb, fake_gemini, celery_worker_process):
    fake_gemini.latency_ms = 150  # long enough for the two runs' tasks to overlap on every post
    posts = make_posts(16)
    # Two runs over the same posts, each chunk enqueued for both back to back, so two worker processes take
    # the same posts at the same moment (what a double click or a redelivered message does).
    first, ids = prelabel_run_create(source="teacher")
    second, same_ids = prelabel_run_create(source="teacher")
    assert ids == same_ids and first.total == 16
    for i in range(0, 16, 4):
        teacher_label_chunk.delay(first.pk, ids[i:i + 4])
        teacher_label_chunk.delay(second.pk, ids[i:i + 4])
    wait_finished(first, second)
    assert fake_gemini.stats()["requests"] == 16  # every post paid exactly once
    assert Prediction.objects.filter(source="teacher").count() == 16
    assert Prediction.objects.filter(source="teacher", status="ok").count() == len(posts)
    assert first.ok + second.ok == 16 and first.skipped + second.skipped == 16
    assert first.status == second.status == "done"


@pytest.mark.pg
@pytest.mark.django_db
def test_redis_rate_limiter_spaces_calls_across_clients(settings):
    url = redis_url()
    assert url.startswith("redis://")
    a, b = RedisRateLimiter(url, 20.0, key="bb:test:slot"), RedisRateLimiter(url, 20.0, key="bb:test:slot")
    a.client.delete("bb:test:slot")
    waits = [limiter.reserve() for limiter in (a, b, a, b, a, b)]
    assert waits[0] == pytest.approx(0, abs=0.01)
    assert waits[-1] == pytest.approx(0.25, abs=0.03)  # 5 slots of 1/20 s, shared by both clients


def test_file_rate_limiter_spaces_calls(tmp_path):
    a, b = FileRateLimiter(tmp_path / "slot", 20.0), FileRateLimiter(tmp_path / "slot", 20.0)
    waits = [limiter.reserve() for limiter in (a, b, a, b)]
    assert waits[0] == pytest.approx(0, abs=0.01) and waits[-1] == pytest.approx(0.15, abs=0.03)
