import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from annotation.models import ImportBatch, Post


@pytest.mark.django_db
def test_admin_uploads_jsonl_and_sees_line_errors(client_as):
    client = client_as("admin")
    content = b'{"text": "my SK2 essence > la mer tbh"}\n{oops\n{"text": "second"}\n'
    response = client.post("/import/", {"file": SimpleUploadedFile("posts.jsonl", content)}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "line 2: invalid JSON" in page
    assert Post.objects.count() == 2
    batch = ImportBatch.objects.get()
    assert (batch.status, batch.created_by, batch.error_count) == ("done", client.user, 1)


@pytest.mark.django_db
def test_unsupported_file_type_is_refused(client_as):
    response = client_as("admin").post("/import/", {"file": SimpleUploadedFile("posts.xlsx", b"PK..")})
    assert response.status_code == 400
    assert "Unsupported file type .xlsx" in response.content.decode()


@pytest.mark.django_db
@override_settings(IMPORT_MAX_UPLOAD_BYTES=100)
def test_oversized_upload_is_refused_before_import(client_as):
    big = b'{"text": "x"}\n' * 20_000
    response = client_as("admin").post("/import/", {"file": SimpleUploadedFile("big.jsonl", big)})
    assert response.status_code == 413
    assert Post.objects.count() == 0 and ImportBatch.objects.count() == 0


@pytest.mark.django_db
@override_settings(IMPORT_SYNC_MAX_BYTES=10, CELERY_TASK_ALWAYS_EAGER=True)
def test_large_upload_goes_through_the_celery_task(client_as, django_capture_on_commit_callbacks):
    from beautybrain_app.celery import app

    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = client_as("admin").post(
                "/import/", {"file": SimpleUploadedFile("p.jsonl", b'{"text": "a"}\n{"text": "b"}\n')})
    finally:
        app.conf.task_always_eager = False
    batch = ImportBatch.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/import/{batch.pk}/"
    assert (batch.status, batch.posts_created) == ("done", 2)


@pytest.mark.django_db
def test_batch_page_polls_while_running_and_stops_when_done(client_as):
    client = client_as("admin")
    batch = ImportBatch.objects.create(filename="x.jsonl", format="jsonl", status="running", size_bytes=100,
                                       bytes_read=40)
    running = client.get(f"/import/{batch.pk}/", headers={"HX-Request": "true"})
    assert running.status_code == 200 and 'hx-trigger="every 1s"' in running.content.decode()
    assert 'aria-valuenow="40"' in running.content.decode()
    batch.status = "done"
    batch.save()
    done = client.get(f"/import/{batch.pk}/", headers={"HX-Request": "true"})
    assert done.status_code == 286  # htmx: stop polling


@pytest.mark.django_db
def test_admin_kb_csv_export_and_import(client_as, kb):
    client = client_as("admin")
    exported = b"".join(client.get("/admin/kb/brand/export-csv/").streaming_content).decode("utf-8-sig")
    assert exported.startswith("canonical_name,aliases,alias_origin,category")
    sk2_line = next(line for line in exported.splitlines() if line.startswith("SK-II,"))
    assert "SK2" in sk2_line.split(",")[1].split("|")
    upload = SimpleUploadedFile("b.csv", b"canonical_name,aliases,alias_origin,category\nNewBrand,NB1,manual,makeup\n")
    response = client.post("/admin/kb/brand/import-csv/", {"file": upload}, follow=True)
    assert "1 brands created" in response.content.decode()
