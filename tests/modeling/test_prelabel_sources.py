"""Gazetteer and student sources, the evaluate/predict commands, the run page and the admin actions."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import ImportBatch, Post, Prediction
from annotation.services.importing import content_hash
from modeling.models import ModelGeneration, PrelabelRun
from modeling.services.prelabel import SourceUnavailable, prelabel_chunk, prelabel_run_start
from tests.conftest import DEMO
from tests.modeling.fake_gemini import small_kb  # noqa: F401 - fixture


def make_posts(*texts, batch=None):
    return [Post.objects.create(platform="test", text=t, content_hash=content_hash(t), import_batch=batch) for t in texts]


@pytest.mark.django_db
def test_gazetteer_run_labels_and_is_idempotent(small_kb):
    a, b = make_posts("Bought La Mer and #SK2 today", "nothing here")
    run = prelabel_run_start(source="gazetteer", sync=True)
    assert (run.status, run.total, run.ok) == ("done", 2, 2)
    pred = Prediction.objects.get(post=a, source="gazetteer")
    assert [(s["text"], s["brand"]) for s in pred.spans] == [("La Mer", "La Mer"), ("SK2", "SK-II")]
    assert pred.brand_count == 2 and pred.is_beauty is True
    # A redelivered chunk is a no-op.
    assert prelabel_chunk(run_id=run.pk, post_ids=[a.pk, b.pk]) == {"ok": 0, "failed": 0, "skipped": 2}
    assert Prediction.objects.filter(source="gazetteer").count() == 2
    assert prelabel_run_start(source="gazetteer", sync=True).total == 0


@pytest.mark.django_db
def test_student_is_unavailable_until_a_generation_is_promoted():
    make_posts("La Mer")
    with pytest.raises(SourceUnavailable, match="no model generation has been promoted"):
        prelabel_run_start(source="student", sync=True)
    with pytest.raises(CommandError, match="promoted"):
        call_command("prelabel", "--source", "student", "--sync")
    assert not PrelabelRun.objects.exists()
    assert not ModelGeneration.objects.filter(status="promoted").exists()


@pytest.mark.django_db
def test_evaluate_and_predict_commands_on_gold(small_kb, tmp_path, capsys):
    rows = [json.loads(line) for line in (DEMO / "gold_seed.jsonl").read_text(encoding="utf-8").splitlines()[:60]]
    data = tmp_path / "gold.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    call_command("evaluate", "--model", "gazetteer", "--data", str(data), "--json")
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("span_f1", "span_precision", "span_recall", "brand_em", "category_accuracy", "beauty_f1"):
        assert key in figures
    assert 0 <= figures["span_f1"] <= 1 and figures["posts"] == 60
    out = tmp_path / "pred.jsonl"
    call_command("predict", "--model", "gazetteer", "--data", str(data), "--out", str(out))
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [w["id"] for w in written] == [r["id"] for r in rows]
    for w in written:
        assert set(w) >= {"id", "text", "is_beauty", "brands"}
        for b in w["brands"]:
            assert set(b) == {"start", "end", "text", "brand", "category"}
            assert w["text"][b["start"]:b["end"]] == b["text"]
    with pytest.raises(CommandError, match="Unknown model"):
        call_command("evaluate", "--model", "nonsense", "--data", str(data))


@pytest.mark.django_db
def test_run_page_polls_until_finished(client_as):
    client = client_as("admin")
    run = PrelabelRun.objects.create(source="gazetteer", model_version="gazetteer-v2", total=10, done=4,
                                     status=PrelabelRun.Status.RUNNING)
    page = client.get(f"/models/prelabel/{run.pk}/")
    assert page.status_code == 200 and b'hx-trigger="every 1s"' in page.content and b"4 of 10" in page.content
    partial = client.get(f"/models/prelabel/{run.pk}/", HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and b"<html" not in partial.content
    PrelabelRun.objects.filter(pk=run.pk).update(status="stopped", done=6, message="Teacher budget spent")
    final = client.get(f"/models/prelabel/{run.pk}/", HTTP_HX_REQUEST="true")
    assert final.status_code == 286  # htmx: stop polling
    assert b"Teacher budget spent" in final.content and b"every 1s" not in final.content


@pytest.mark.django_db
def test_run_page_is_for_admins(client_as):
    run = PrelabelRun.objects.create(source="gazetteer", total=1)
    assert client_as("annotator").get(f"/models/prelabel/{run.pk}/").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_admin_actions_on_import_batches_and_posts_and_the_start_page(small_kb, client_as):
    from beautybrain_app.celery import app

    app.conf.task_always_eager = True  # the admin enqueues on commit; run the chunks here
    try:
        batch = ImportBatch.objects.create(filename="x.jsonl", format="jsonl")
        posts = make_posts("La Mer one", "SK2 two", batch=batch)
        make_posts("not in the batch")
        client = client_as("admin")
        response = client.post("/admin/annotation/importbatch/", {
            "action": "prelabel_gazetteer", "_selected_action": [batch.pk]}, follow=True)
        run = PrelabelRun.objects.get()
        assert (run.status, run.total, run.ok) == ("done", 2, 2)
        assert b"Follow its progress" in response.content
        response = client.post("/admin/annotation/post/", {
            "action": "prelabel_student", "_selected_action": [p.pk for p in posts]}, follow=True)
        assert b"no model generation has been promoted" in response.content and PrelabelRun.objects.count() == 1
        response = client.post("/models/prelabel/", {"source": "gazetteer"}, follow=True)
        assert response.redirect_chain[-1][0] == f"/models/prelabel/{PrelabelRun.objects.first().pk}/"
        assert Prediction.objects.filter(source="gazetteer").count() == 3
    finally:
        app.conf.task_always_eager = False


@pytest.mark.django_db
def test_predictions_landing_refresh_the_queue_priority(small_kb):
    (post,) = make_posts("Bought La Mer and #SK2 today")
    before = Post.objects.get(pk=post.pk).priority
    prelabel_run_start(source="gazetteer", sync=True)
    from annotation.models import Prediction as P
    from annotation.services.queue import priority_for

    expected = priority_for(list(P.objects.filter(post=post)))
    assert Post.objects.get(pk=post.pk).priority == pytest.approx(expected)
    assert expected != before


@pytest.mark.django_db
def test_an_unexpected_error_fails_the_run_with_its_message(small_kb, monkeypatch):
    import modeling.services.prelabel as prelabel

    def broken(posts):
        raise RuntimeError("disk full")

    monkeypatch.setattr(prelabel, "gazetteer_predict_batch", broken)
    make_posts("La Mer")
    with pytest.raises(RuntimeError):
        prelabel_run_start(source="gazetteer", sync=True)
    run = PrelabelRun.objects.get()
    assert run.status == "failed" and "disk full" in run.message and run.finished_at is not None
