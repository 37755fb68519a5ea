"""A real worker process, a real broker, a real database: the embedded default and production."""

import json

import pytest
from django.conf import settings
from django.db import connection

from annotation.models import ImportBatch, Post
from annotation.services.importing import import_batch_create
from annotation.tasks import import_batch_task
from beautybrain_app.celery import ping


def _round_trip(tmp_path):
    assert ping.delay().get(timeout=60) == "pong"
    path = tmp_path / "posts.jsonl"
    rows = [{"id": f"t{i}", "platform": "tiktok", "text": f"my SK2 essence > la mer tbh #{i} 💄"} for i in range(25)]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n{broken\n", encoding="utf-8")
    batch = import_batch_create(path=path, filename=path.name)
    assert import_batch_task.delay(batch.pk).get(timeout=120) == "done"
    batch.refresh_from_db()
    assert (batch.posts_created, batch.error_count, batch.errors[0]["line"]) == (25, 1, 26)
    assert Post.objects.filter(text__endswith="💄").count() == 25
    # A redelivered message is a no-op.
    assert import_batch_task.delay(batch.pk).get(timeout=60) == "skipped"
    assert ImportBatch.objects.get(pk=batch.pk).posts_created == 25


@pytest.mark.django_db(transaction=True)
def test_round_trip_on_filesystem_broker_and_sqlite(celery_worker_process, tmp_path):
    assert settings.CELERY_BROKER_URL.startswith("filesystem://")
    assert connection.vendor == "sqlite"
    _round_trip(tmp_path)


@pytest.mark.pg
@pytest.mark.django_db(transaction=True)
def test_round_trip_on_redis_and_postgresql(celery_worker_process, tmp_path):
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    assert connection.vendor == "postgresql"
    _round_trip(tmp_path)
