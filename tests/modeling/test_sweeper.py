"""The sweeper resends long jobs whose worker died (their message lost) and fails them after SWEEP_MAX_RESUMES."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from annotation.models import DatasetVersion, ImportBatch, Post, Prediction
from annotation.services.importing import content_hash
from modeling.models import ModelGeneration, PrelabelRun
from modeling.services.sweeper import sweep_stale
from tests.modeling.fake_gemini import small_kb  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db

AN_HOUR_AGO = timezone.now() - timedelta(hours=1)


@pytest.fixture
def sent(monkeypatch):
    """Run every task the sweeper sends here and now (as a worker would), and list what was sent."""
    from annotation import tasks as annotation_tasks
    from modeling import tasks as modeling_tasks

    log = []

    def run_now(task):
        def send(*args):
            log.append((task.name.rsplit(".", 1)[-1], args))
            return task.apply(args=args)
        return send

    for task in (annotation_tasks.import_batch_task, annotation_tasks.dataset_freeze_task,
                 modeling_tasks.gazetteer_label_chunk):
        monkeypatch.setattr(task, "delay", run_now(task))
        monkeypatch.setattr(task, "delay_on_commit", run_now(task))
    monkeypatch.setattr(modeling_tasks.gpu_train_generation, "delay",
                        lambda *args: log.append(("gpu_train_generation", args)))
    return log


def _stale(model, pk, **fields):
    model.objects.filter(pk=pk).update(updated_at=AN_HOUR_AGO, **fields)


def _jsonl(tmp_path, n: int):
    path = tmp_path / "posts.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "platform": "tiktok", "text": f"sweeper post {i} SK2"}) + "\n"
                            for i in range(n)), encoding="utf-8")
    return path


def test_an_import_whose_message_was_lost_is_resent_and_every_row_lands_once(tmp_path, sent,
                                                                             django_capture_on_commit_callbacks):
    from annotation.services.importing import import_batch_create

    batch = import_batch_create(path=_jsonl(tmp_path, 30), filename="posts.jsonl")
    _stale(ImportBatch, batch.pk, status="running")  # a worker took it, then its main process died
    with django_capture_on_commit_callbacks(execute=True):
        report = sweep_stale()
    assert report.resumed == [f"import #{batch.pk}"] and sent == [("import_batch_task", (batch.pk,))]
    batch.refresh_from_db()
    assert (batch.status, batch.posts_created, batch.resumes, Post.objects.count()) == ("done", 30, 1, 30)
    assert sweep_stale().resumed == []  # done: nothing left to sweep


def test_nothing_is_resent_while_an_import_of_the_same_kind_still_moves(tmp_path, sent):
    from annotation.services.importing import import_batch_create

    waiting = import_batch_create(path=_jsonl(tmp_path, 3), filename="waiting.jsonl")
    _stale(ImportBatch, waiting.pk)
    ImportBatch.objects.create(filename="busy.jsonl", format="jsonl", status="running", stored_path=str(tmp_path))
    assert sweep_stale().resumed == [] and sent == []  # queued behind a live import, not lost


def test_an_import_resent_too_often_or_without_its_file_fails_with_the_reason(tmp_path, sent):
    from annotation.services.importing import import_batch_create

    tired = import_batch_create(path=_jsonl(tmp_path, 3), filename="tired.jsonl")
    _stale(ImportBatch, tired.pk, status="running", resumes=3, lines_read=2)
    api = ImportBatch.objects.create(filename="api", format="jsonl", status="running")
    _stale(ImportBatch, api.pk)
    report = sweep_stale(max_resumes=3)
    assert sorted(report.failed) == sorted([f"import #{tired.pk}", f"import #{api.pk}"]) and sent == []
    tired.refresh_from_db()
    api.refresh_from_db()
    assert tired.status == "failed" and "resent it 3 times" in tired.failure and "2 lines were read" in tired.failure
    assert api.status == "failed" and "not resumable" in api.failure


def test_a_prelabel_run_with_lost_chunks_gets_only_its_unlabelled_posts(small_kb, sent,
                                                                        django_capture_on_commit_callbacks):
    from modeling.services.prelabel import prelabel_chunk, prelabel_run_create

    posts = [Post.objects.create(platform="test", text=f"La Mer and #SK2 {i}", content_hash=content_hash(f"sw{i}"))
             for i in range(5)]
    run, ids = prelabel_run_create(source="gazetteer")
    assert run.post_ids == ids == [p.pk for p in posts]
    prelabel_chunk(run_id=run.pk, post_ids=ids[:2])  # the first chunk ran; the second's message was lost
    _stale(PrelabelRun, run.pk)
    with django_capture_on_commit_callbacks(execute=True):
        report = sweep_stale()
    assert report.resumed == [f"pre-label run #{run.pk} (gazetteer): 3 posts resent"]
    assert sent == [("gazetteer_label_chunk", (run.pk, ids[2:]))]
    run.refresh_from_db()
    assert (run.status, run.done, run.total, run.ok, run.resumes) == ("done", 5, 5, 5, 1)
    assert Prediction.objects.filter(source="gazetteer").count() == 5


def test_a_prelabel_run_whose_posts_are_all_labelled_is_marked_done(small_kb, sent):
    from modeling.services.prelabel import prelabel_chunk, prelabel_run_create

    Post.objects.create(platform="test", text="La Mer", content_hash=content_hash("sw-done"))
    run, ids = prelabel_run_create(source="gazetteer")
    prelabel_chunk(run_id=run.pk, post_ids=ids)
    PrelabelRun.objects.filter(pk=run.pk).update(status="running", done=0)  # died before it counted
    _stale(PrelabelRun, run.pk)
    sweep_stale()
    run.refresh_from_db()
    assert (run.status, run.done) == ("done", 1) and sent == []


def test_a_run_counted_twice_is_done_only_once_every_post_is_labelled(small_kb):
    """A redelivered chunk and the sweeper's resend can both count a post: the count alone reached
    `total` while a third chunk still labelled other posts, and the run said done too early."""
    from modeling.services.prelabel import prelabel_chunk, prelabel_run_create

    for i in range(4):
        Post.objects.create(platform="test", text=f"La Mer {i}", content_hash=content_hash(f"twice{i}"))
    run, ids = prelabel_run_create(source="gazetteer")
    prelabel_chunk(run_id=run.pk, post_ids=ids[:2])
    prelabel_chunk(run_id=run.pk, post_ids=ids[:2])  # the same chunk again: its posts are skipped, yet counted
    run.refresh_from_db()
    assert (run.status, run.done) == ("running", 4)  # the count is at total, two posts have no label yet
    prelabel_chunk(run_id=run.pk, post_ids=ids[2:])
    run.refresh_from_db()
    assert run.status == "done" and Prediction.objects.filter(source="gazetteer").count() == 4


def test_a_freeze_whose_worker_died_is_resent_and_freezes(small_kb, sent, django_capture_on_commit_callbacks):
    from annotation.services.datasets import dataset_version_create
    from tests.annotation.dataset_factories import gold

    gold("I love my La Mer cream", [("La Mer", "La Mer", "skincare")], is_beauty=True)
    version = dataset_version_create()
    _stale(DatasetVersion, version.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_stale().resumed == [f"v{version.number}"]
    version.refresh_from_db()
    assert (version.status, version.resumes, version.counts["gold"]) == ("frozen", 1, 1)


def test_a_training_whose_lease_lapsed_is_resent_unless_another_training_holds_a_lease(small_kb, sent,
                                                                                       django_capture_on_commit_callbacks):
    from tests.annotation.dataset_factories import gold
    from annotation.services.datasets import dataset_freeze_now

    gold("I love my La Mer cream", [("La Mer", "La Mer", "skincare")], is_beauty=True)
    version = dataset_freeze_now()
    dead = ModelGeneration.objects.create(number=1, base_model="tiny", dataset_version=version, status="training",
                                          lease_owner="host:1", lease_until=AN_HOUR_AGO)
    live = ModelGeneration.objects.create(number=2, base_model="tiny", dataset_version=version, status="training",
                                          lease_owner="host:2", lease_until=timezone.now() + timedelta(minutes=2))
    assert sweep_stale().resumed == [] and sent == []  # the gpu worker is busy with gen-2
    live.status, live.lease_until = "ready", None
    live.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_stale().resumed == ["gen-1"]
    assert sent == [("gpu_train_generation", (dead.pk,))]
    ModelGeneration.objects.filter(pk=dead.pk).update(resumes=3)
    assert sweep_stale(max_resumes=3).failed == ["gen-1"]
    dead.refresh_from_db()
    assert dead.status == "failed" and "resent it 3 times" in dead.error and dead.lease_until is None


def test_an_export_whose_worker_died_is_resent_and_fails_after_the_limit(small_kb, monkeypatch,
                                                                        django_capture_on_commit_callbacks):
    """A killed export left its generation 'exporting' (never promotable) and its state 'running' for good."""
    from modeling import tasks
    from tests.annotation.dataset_factories import gold
    from annotation.services.datasets import dataset_freeze_now

    sent = []
    monkeypatch.setattr(tasks.gpu_export_generation, "delay", lambda *args: sent.append(args))
    gold("I love my La Mer cream", [("La Mer", "La Mer", "skincare")], is_beauty=True)
    version = dataset_freeze_now()
    old = AN_HOUR_AGO.isoformat()
    dead = ModelGeneration.objects.create(number=1, base_model="tiny", dataset_version=version, status="exporting",
                                          export_metrics={"state": "running", "format": "int8", "started_at": old},
                                          lease_owner="host:1", lease_until=AN_HOUR_AGO)
    fresh = ModelGeneration.objects.create(number=2, base_model="tiny", dataset_version=version, status="ready",
                                           export_metrics={"state": "queued", "format": "",
                                                           "queued_at": timezone.now().isoformat()})
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_stale().resumed == ["gen-1 export"]  # gen-2's export was queued a moment ago
    assert sent == [(dead.pk, "int8", False)]
    dead.refresh_from_db()
    assert dead.export_metrics["resumes"] == 1 and dead.status == "exporting"

    dead.lease_owner, dead.lease_until = "host:9", timezone.now() + timedelta(minutes=2)  # a worker exports it
    dead.save()
    assert sweep_stale().resumed == [] and len(sent) == 1
    ModelGeneration.objects.filter(pk=dead.pk).update(lease_until=AN_HOUR_AGO,
                                                      export_metrics={**dead.export_metrics, "resumes": 3})
    assert sweep_stale(max_resumes=3).failed == ["gen-1 export"]
    dead.refresh_from_db()
    assert dead.status == "ready" and dead.export_metrics["state"] == "error"
    assert "resent it 3 times" in dead.export_metrics["error"] and fresh.export_metrics["state"] == "queued"


def test_a_redelivered_export_leaves_one_that_another_worker_runs(small_kb):
    from modeling.services.export import generation_export
    from tests.annotation.dataset_factories import gold
    from annotation.services.datasets import dataset_freeze_now

    gold("I love my La Mer cream", [("La Mer", "La Mer", "skincare")], is_beauty=True)
    generation = ModelGeneration.objects.create(
        number=1, base_model="tiny", dataset_version=dataset_freeze_now(), status="exporting",
        config={"backbone": "x"}, export_metrics={"state": "running", "format": "int8"},
        lease_owner="elsewhere:1", lease_until=timezone.now() + timedelta(minutes=5))
    metrics = generation_export(generation_id=generation.pk, fmt="int8")
    assert metrics["skipped"] == "another worker holds the generation's lease" and metrics["state"] == "running"
    generation.refresh_from_db()
    assert generation.lease_owner == "elsewhere:1" and generation.status == "exporting"


def test_the_beat_schedules_the_sweep_and_the_command_runs_it(tmp_path, sent, capsys):
    from beautybrain_app.celery import app
    from annotation.services.importing import import_batch_create

    assert app.conf.beat_schedule["sweep-stale"]["task"] == "modeling.tasks.sweep_stale"
    batch = import_batch_create(path=_jsonl(tmp_path, 2), filename="posts.jsonl")
    _stale(ImportBatch, batch.pk)
    call_command("sweep")
    assert f"resumed import #{batch.pk}" in capsys.readouterr().out
