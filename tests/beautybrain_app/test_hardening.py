"""Malformed input is a clear 4xx and nothing is stored; the defaults are safe (issue: reliability)."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse

from annotation.models import Annotation, Span
from annotation.services.editor import annotation_for_editing
from kb.models import Brand
from tests.annotation import editor_factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def editing(client_as, settings):
    settings.ANNOTATION_DOUBLE_SHARE = 0
    f.mini_kb()
    client = client_as("annotator")
    post = f.post("my SK2 essence > la mer tbh", url="javascript:alert(document.cookie)")
    annotation_for_editing(user=client.user, post=post)
    return client, post


@pytest.mark.parametrize("op", [
    {"op": "add", "start": 3, "end": 6, "brand_id": "abc"},
    {"op": "add", "start": 3, "end": 6, "category_id": "x"},
    {"op": "add", "start": 3, "end": 6, "brand_id": "987654321"},
    {"op": "add", "start": 3, "end": 6, "brand_id": "9" * 40},
    {"op": "add", "start": "9" * 40, "end": 6},
    {"op": "batch", "ops": "xyz"},
    {"op": "batch", "ops": '["not a change"]'},
    {"op": "dismiss", "key": "k" * 100_000},
], ids=["brand-abc", "category-x", "unknown-brand", "huge-brand", "huge-offset", "batch-text", "batch-list", "long-key"])
def test_a_malformed_editor_change_is_a_422_and_changes_nothing(editing, op):
    client, post = editing
    response = client.post(reverse("editor_change", args=[post.pk]), {**op, "version": 1}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422, response.content[:500]
    annotation = Annotation.objects.get(post=post)
    assert annotation.version == 1 and not Span.objects.filter(annotation=annotation).exists()
    assert annotation.dismissed == []


def test_a_batch_of_changes_posted_as_json_applies_in_order(editing):
    client, post = editing
    ops = '[{"op": "add", "start": 3, "end": 6}, {"op": "add", "start": 17, "end": 23}]'
    response = client.post(reverse("editor_change", args=[post.pk]), {"op": "batch", "ops": ops, "version": 1},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert sorted(Span.objects.filter(annotation__post=post).values_list("text", flat=True)) == ["SK2", "la mer"]


def test_huge_ids_in_urls_are_404s_not_500s(client_as):
    client = client_as("admin")
    for url in ("/annotate/99999999999999999999999/", "/review/99999999999999999999999/", "/models/gen-99999999999999999999/",
                "/import/99999999999999999999/", "/datasets/v99999999999999999999999/"):
        assert client.get(url).status_code == 404, url
    assert client.get("/annotate/123456789/").status_code == 404  # nine digits still route, to a 404


@pytest.mark.parametrize("epochs", ["nan", "inf", "-5", "0", "1e9", "many"])
def test_training_with_impossible_epochs_is_refused(client_as, epochs):
    from annotation.models import DatasetVersion
    from modeling.models import ModelGeneration

    version = DatasetVersion.objects.create(number=1, status=DatasetVersion.Status.FROZEN)
    client = client_as("admin")
    response = client.post(reverse("generation_train_next"), {"dataset": version.number, "epochs": epochs}, follow=True)
    assert response.status_code == 200
    assert not ModelGeneration.objects.exists()
    assert DatasetVersion.objects.filter(pk=version.pk).exists()
    text = response.content.decode()
    assert "Epochs must be" in text or "could not convert" in text


def test_report_dates_out_of_range_are_a_400(client_as):
    client = client_as("analyst")
    response = client.get(reverse("reports_export", args=["brand_summary"]), {"date_to": "9999-12-31"})
    assert response.status_code == 400 and b"outside 1990" in response.content
    assert client.get(reverse("reports"), {"date_from": "0001-01-01"}).status_code in (200, 400)


def test_a_post_url_is_a_link_only_over_http(editing):
    client, post = editing
    page = client.get(reverse("editor", args=[post.pk])).content.decode()
    assert "javascript:alert" not in page
    post.url = "https://www.tiktok.com/@someone/video/1"
    post.save(update_fields=["url"])
    assert 'href="https://www.tiktok.com/@someone/video/1"' in client.get(reverse("editor", args=[post.pk])).content.decode()


def test_every_page_sends_a_content_security_policy(client_as):
    client = client_as("admin")
    for url in ("/", "/reports/", "/admin/", "/api/docs"):
        policy = client.get(url).headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in policy and "'unsafe-eval'" not in policy and "object-src 'none'" in policy, url


def test_csv_downloads_start_with_a_bom_and_kb_export_is_formula_safe(client_as):
    from kb.services import brands_import_csv, categories_ensure

    categories_ensure()
    Brand.objects.create(canonical_name='=HYPERLINK("http://x")', slug="evil", category_id=categories_ensure()["skincare"].pk)
    client = client_as("admin")
    report = b"".join(client.get(reverse("reports_export", args=["brand_summary"])).streaming_content)
    assert report.startswith("\ufeff".encode())
    export = b"".join(client.get(reverse("admin:kb_brand_export_csv")).streaming_content).decode("utf-8")
    assert export.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(export.removeprefix("\ufeff"))))
    assert [r["canonical_name"] for r in rows] == ["'=HYPERLINK(\"http://x\")"]
    # The file imports back as it was: the apostrophe that kept it text is not part of the name.
    Brand.objects.all().delete()
    brands_import_csv(stream=io.StringIO(export.removeprefix("\ufeff")))
    assert list(Brand.objects.values_list("canonical_name", flat=True)) == ['=HYPERLINK("http://x")']


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_logins_are_throttled_on_both_doors(client, make_user, path):
    cache.clear()
    make_user("admin", username="boss", password="right-password-1")
    with override_settings(LOGIN_FAILURE_LIMIT=3):
        for _ in range(3):
            client.post(path, {"username": "boss", "password": "wrong"})
        response = client.post(path, {"username": "boss", "password": "right-password-1"})
    assert b"Too many failed attempts" in response.content
    assert "_auth_user_id" not in client.session


def test_guesses_from_many_addresses_hit_the_per_username_limit(client, make_user):
    cache.clear()
    make_user("admin", username="boss", password="right-password-1")
    with override_settings(LOGIN_FAILURE_LIMIT=2, LOGIN_FAILURE_USER_FACTOR=2):
        for i in range(4):  # 2 per address would never trip the per-address limit alone... 4 addresses here
            client.post("/accounts/login/", {"username": "boss", "password": "wrong"}, REMOTE_ADDR=f"10.0.0.{i}")
        response = client.post("/accounts/login/", {"username": "boss", "password": "right-password-1"},
                               REMOTE_ADDR="10.0.0.99")
    assert response.status_code == 429


def test_the_throttle_window_is_not_restarted_by_each_failure(client, make_user, monkeypatch):
    import beautybrain_app.auth as auth

    cache.clear()
    make_user("admin", username="boss", password="right-password-1")
    now = [1_000_000.0]
    monkeypatch.setattr(auth.time, "time", lambda: now[0])
    with override_settings(LOGIN_FAILURE_LIMIT=3, LOGIN_FAILURE_WINDOW_S=300):
        for _ in range(2):
            client.post("/accounts/login/", {"username": "boss", "password": "wrong"})
            now[0] += 200  # the second failure is 200 s after the first; the third 400 s after it
        client.post("/accounts/login/", {"username": "boss", "password": "wrong"})
        # The first window ended at +300: only the last failure counts, so the right password works.
        response = client.post("/accounts/login/", {"username": "boss", "password": "right-password-1"})
    assert response.status_code == 302


def test_the_debug_page_hides_passwords_inside_urls(rf, settings):
    import sys

    from django.views.debug import ExceptionReporter

    settings.CELERY_BROKER_URL = "redis://:hunter2-broker@redis.internal:6379/0"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        html = ExceptionReporter(rf.get("/"), *sys.exc_info()).get_traceback_html()
    # The page quotes this test's source too, so read the settings row itself.
    row = html[html.index("<td>CELERY_BROKER_URL</td>"):][:200]
    assert "redis://:********@redis.internal:6379/0" in row and "hunter2" not in row


def test_an_annotator_with_an_empty_queue_sees_only_their_own_progress(client_as, make_user, settings):
    settings.ANNOTATION_DOUBLE_SHARE = 0
    other = make_user("annotator", username="colleague")
    p = f.post("a post done by a colleague about SK2")
    f.submitted(p, other, [])
    gold = f.submitted(p, make_user("reviewer"), [])
    Annotation.objects.filter(pk=gold.pk).update(is_gold=True)  # adjudicated: nobody's queue holds it
    client = client_as("annotator")
    page = client.get(reverse("queue")).content.decode()
    assert "Nothing left in your queue" in page and "colleague" not in page
    reviewer = client_as("reviewer")
    assert "colleague" in reviewer.get(reverse("queue")).content.decode()


def test_a_kb_csv_with_a_byte_that_is_not_utf8_imports_nothing_and_says_where(client_as):
    from django.core.files.uploadedfile import SimpleUploadedFile

    body = b"canonical_name,aliases,alias_origin,category\nGoodBrand,,,makeup\nBad\xff Brand,,,makeup\n"
    client = client_as("admin")
    response = client.post("/admin/kb/brand/import-csv/", {"file": SimpleUploadedFile("kb.csv", body)}, follow=True)
    assert response.status_code == 200
    assert "Nothing imported: line 3 is not UTF-8" in response.content.decode()
    assert not Brand.objects.filter(canonical_name="GoodBrand").exists()
