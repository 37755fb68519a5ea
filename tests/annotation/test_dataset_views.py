import hashlib
import json
import time

import pytest
from django.conf import settings
from django.db import connection
from django.urls import reverse

from annotation.datasets import version_sha256
from annotation.models import DatasetVersion
from annotation.services.datasets import dataset_freeze_now
from annotation.tasks import dataset_freeze_task
from tests.annotation.dataset_factories import gold

HX = {"HTTP_HX_REQUEST": "true"}


def _some_gold(n: int = 3):
    for i in range(n):
        gold(f"post {i} with Glossier 💄", [("Glossier", "Glossier", "makeup")])


@pytest.mark.django_db
def test_pages_are_for_admins_and_reviewers(client_as):
    annotator = client_as("annotator")
    assert annotator.get(reverse("dataset_list")).status_code == 403
    assert annotator.post(reverse("dataset_freeze")).status_code == 403
    assert client_as("reviewer").get(reverse("dataset_list")).status_code == 200  # admins: the other tests


@pytest.mark.django_db
def test_list_shows_versions_with_stats_in_constant_queries(client_as, django_assert_max_num_queries):
    _some_gold()
    for _ in range(3):
        dataset_freeze_now(note="weekly")
    client = client_as("reviewer")
    client.get(reverse("dataset_list"))  # warm the session and role caches
    with django_assert_max_num_queries(6):
        html = client.get(reverse("dataset_list")).content.decode()
    assert html.count("weekly") == 3 and "v3" in html and "← v2" in html


@pytest.mark.django_db
def test_freeze_from_the_page_polls_until_frozen(client_as, django_capture_on_commit_callbacks):
    _some_gold()
    client = client_as("admin")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("dataset_freeze"), {"note": "from the page"})
    version = DatasetVersion.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("dataset_detail", args=[version.number])
    assert len(callbacks) == 1  # the task is enqueued only once the row is committed
    assert (version.status, version.progress_total, version.created_by) == ("freezing", 3, client.user)

    polling = client.get(reverse("dataset_detail", args=[1]), **HX)
    assert polling.status_code == 200 and 'hx-trigger="every 1s"' in polling.content.decode()
    assert "0 of 3 posts" in polling.content.decode()
    # A second freeze while one runs is refused with a message, not a second version.
    client.post(reverse("dataset_freeze"), {"note": "again"})
    assert DatasetVersion.objects.count() == 1

    assert dataset_freeze_task(version.pk) == "frozen"  # what the worker runs
    assert dataset_freeze_task(version.pk) == "skipped"  # a redelivered message changes nothing
    done = client.get(reverse("dataset_detail", args=[1]), **HX)
    assert done.status_code == 286  # htmx stops polling
    body = done.content.decode()
    assert "hx-trigger" not in body and "frozen" in body and "train.jsonl" in body


@pytest.mark.django_db
def test_detail_shows_the_diff_to_the_parent_and_downloads_stream_the_frozen_files(client_as):
    _some_gold()
    dataset_freeze_now()
    gold("new one with Rhode", [("Rhode", "Rhode", "skincare")])
    v2 = dataset_freeze_now(note="added rhode")
    client = client_as("reviewer")
    html = client.get(reverse("dataset_detail", args=[2])).content.decode()
    assert "Changes since v1" in html and "spans, skincare" in html
    dataset_freeze_now(note="same again")
    against_v1 = client.get(reverse("dataset_detail", args=[3]), {"against": "1"}).content.decode()
    assert "Changes since v1" in against_v1 and "spans, skincare" in against_v1
    assert "spans, skincare" not in client.get(reverse("dataset_detail", args=[3])).content.decode()  # v2 → v3: none
    hashes = {}
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "silver.jsonl"):
        response = client.get(reverse("dataset_download", args=[2, name]))
        assert response.streaming and response["X-Dataset-Sha256"] == v2.sha256
        hashes[name] = hashlib.sha256(b"".join(response.streaming_content)).hexdigest()
    assert version_sha256(hashes) == v2.sha256
    manifest = json.loads(b"".join(client.get(reverse("dataset_download", args=[2, "manifest.json"])).streaming_content))
    assert (manifest["version"], manifest["parent"], manifest["sha256"], manifest["counts"]["gold"]) == (2, 1, v2.sha256, 4)
    assert client.get(reverse("dataset_download", args=[2, "secrets.txt"])).status_code == 404
    assert client.get(reverse("dataset_download", args=[9, "train.jsonl"])).status_code == 404


def _freeze_on_a_worker(client):
    _some_gold(40)
    assert client.post(reverse("dataset_freeze"), {"note": "worker"}).status_code == 302
    version = DatasetVersion.objects.get()
    deadline = time.monotonic() + 120
    while True:
        response = client.get(reverse("dataset_detail", args=[version.number]), **HX)
        if response.status_code == 286:
            break
        assert time.monotonic() < deadline, "the worker did not freeze the version in 120 s"
        time.sleep(0.5)
    version.refresh_from_db()
    assert (version.status, version.counts["gold"], version.progress_done) == ("frozen", 40, 40)
    assert len(version.sha256) == 64


@pytest.mark.django_db(transaction=True)
def test_freezing_runs_on_a_real_worker_sqlite(celery_worker_process, client_as):
    assert settings.CELERY_BROKER_URL.startswith("filesystem://") and connection.vendor == "sqlite"
    _freeze_on_a_worker(client_as("admin"))


@pytest.mark.pg
@pytest.mark.django_db(transaction=True)
def test_freezing_runs_on_a_real_worker_postgresql(celery_worker_process, client_as):
    assert settings.CELERY_BROKER_URL.startswith("redis://") and connection.vendor == "postgresql"
    _freeze_on_a_worker(client_as("admin"))
