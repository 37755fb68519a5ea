"""kill -9 a real Celery worker's pool process mid-task (import, pre-label, freeze, training), on
PostgreSQL + Redis, and check the end state: every row imported once, every post labelled once, the
version frozen once with every item, the generation trained once and finished; nothing left running."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from annotation.models import Post, Prediction
from annotation.services.importing import content_hash
from modeling.models import ModelGeneration, PrelabelRun
from modeling.services.prelabel import prelabel_run_create
from modeling.tasks import teacher_label_chunk
from tests.modeling.fake_gemini import fake_gemini, small_kb  # noqa: F401 - fixtures

pytestmark = [pytest.mark.pg, pytest.mark.crash, pytest.mark.django_db(transaction=True)]


def wait_until(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def busy_child(worker) -> psutil.Process:
    """The pool process running a task: the one whose CPU time moves, else any child."""
    children = psutil.Process(worker.pid).children()
    assert children, "the worker has no pool processes"
    return max(children, key=lambda c: sum(c.cpu_times()[:2]))


@pytest.fixture
def short_lease(monkeypatch):
    monkeypatch.setenv("GPU_LEASE_SECONDS", "4")  # the worker inherits it: a dead child's lease lapses fast


@pytest.mark.parametrize("celery_worker_process", [1], indirect=True)
def test_pool_child_killed_mid_prelabel_every_post_labelled_once(small_kb, fake_gemini, celery_worker_process):
    fake_gemini.latency_ms = 250
    posts = [Post.objects.create(platform="test", text=f"OPI and La Mer #{i}", content_hash=content_hash(f"crash {i}"))
             for i in range(12)]
    run, ids = prelabel_run_create(source="teacher")
    for i in range(0, 12, 6):
        teacher_label_chunk.delay(run.pk, ids[i:i + 6])
    wait_until(lambda: fake_gemini.stats()["requests"] >= 3, 60, "the first teacher calls")
    victim = psutil.Process(celery_worker_process.pid).children()[0]
    os.kill(victim.pid, signal.SIGKILL)  # mid-call: its post stays claimed
    run = wait_until(lambda: PrelabelRun.objects.filter(pk=run.pk, status="done").first(), 120, "the run to finish")
    preds = Prediction.objects.filter(source="teacher")
    assert preds.count() == len(posts) and set(preds.values_list("status", flat=True)) == {"ok"}
    assert sorted(preds.values_list("post_id", flat=True)) == sorted(p.pk for p in posts)
    assert run.done == run.total == 12 and run.ok + run.skipped == 12
    # At most the one call in flight when the child died is paid twice.
    assert 12 <= fake_gemini.stats()["requests"] <= 13


@pytest.mark.parametrize("celery_worker_process", [1], indirect=True)
def test_pool_child_killed_mid_training_the_generation_trains_once_and_finishes(kb, short_lease, celery_worker_process,
                                                                               settings, tmp_path):
    from pathlib import Path

    from modeling.services import generations as svc
    from tests.modeling.student_factories import build_tiny_qwen2
    from tests.modeling.test_generations import TINY, _dataset

    backbone = str(build_tiny_qwen2(tmp_path / "tiny"))
    version = _dataset(teacher_posts=2)
    generation = svc.generation_create(dataset_version=version, base_model=backbone, epochs=40,
                                       config={**TINY, "batch_size": 4}, enqueue=False)
    from modeling.tasks import gpu_train_generation

    gpu_train_generation.delay(generation.pk)
    checkpoint = Path(generation.artifact_path) / "checkpoint.pt"
    wait_until(checkpoint.exists, 120, "the first checkpoint")
    first = ModelGeneration.objects.get(pk=generation.pk)
    assert first.status == "training" and first.lease_owner
    os.kill(busy_child(celery_worker_process).pid, signal.SIGKILL)
    done = wait_until(lambda: ModelGeneration.objects.filter(pk=generation.pk, status__in=["ready", "promoted", "failed"])
                      .first(), 300, "the generation to finish")
    assert done.status != "failed", done.error
    assert done.lease_owner != first.lease_owner or done.lease_owner == ""  # another process finished it
    assert done.step == done.total_steps and done.lease_until is None
    import json

    summary = json.loads((Path(done.artifact_path) / "training.json").read_text())
    assert summary["resumed_from"] > 0  # continued from the checkpoint, not trained twice from scratch


@pytest.mark.parametrize("celery_worker_process", [1], indirect=True)
def test_pool_child_killed_mid_import_every_row_lands_exactly_once(celery_worker_process, settings, tmp_path):
    import json

    from annotation.models import ImportBatch
    from annotation.services.importing import import_batch_create
    from annotation.tasks import import_batch_task

    n = 30_000
    path = settings.VAR_DIR / "crash-import.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"c{i}", "platform": "tiktok", "text": f"crash test post {i}: my SK2 essence"}) + "\n")
    batch = import_batch_create(path=path, filename="crash-import.jsonl")
    import_batch_task.delay(batch.pk)
    wait_until(lambda: ImportBatch.objects.filter(pk=batch.pk, status="running", lines_read__gt=0).exists(), 120,
               "the import to store its first chunk")
    os.kill(busy_child(celery_worker_process).pid, signal.SIGKILL)
    killed_at = ImportBatch.objects.get(pk=batch.pk).lines_read
    done = wait_until(lambda: ImportBatch.objects.filter(pk=batch.pk, status__in=["done", "failed"]).first(), 300,
                      "the import to finish")
    assert done.status == "done", done.failure
    assert 0 < killed_at < n  # it really died mid-file
    assert Post.objects.count() == n and done.posts_created == n and done.posts_duplicate == 0
    assert done.error_count == 0


@pytest.mark.parametrize("celery_worker_process", [1], indirect=True)
def test_pool_child_killed_mid_freeze_the_version_freezes_once_with_every_item(small_kb, celery_worker_process):
    from annotation.models import DatasetItem, DatasetVersion
    from annotation.services.datasets import dataset_version_freeze_start

    n = 20_000
    posts = Post.objects.bulk_create([Post(platform="tiktok", text=f"freeze crash {i}: my SK2 essence",
                                           content_hash=content_hash(f"freeze crash {i}")) for i in range(n)])
    Prediction.objects.bulk_create([
        Prediction(post=p, source="teacher", model_version="gemini-2.5-flash", is_beauty=True, spans=[
            {"start": p.text.index("SK2"), "end": p.text.index("SK2") + 3, "text": "SK2", "brand": "SK-II",
             "brand_id": None, "category": "skincare"}]) for p in posts], batch_size=2000)
    from django.db import transaction

    with transaction.atomic():
        version = dataset_version_freeze_start()
    wait_until(lambda: DatasetVersion.objects.filter(pk=version.pk, progress_done__gt=0).exists(), 120,
               "the freeze to store its first items")
    os.kill(busy_child(celery_worker_process).pid, signal.SIGKILL)
    assert DatasetVersion.objects.get(pk=version.pk).status == "freezing"  # it died mid-way, not after
    frozen = wait_until(lambda: DatasetVersion.objects.filter(pk=version.pk, status__in=["frozen", "failed"]).first(),
                        300, "the version to freeze")
    assert frozen.status == "frozen", frozen.error
    items = DatasetItem.objects.filter(version=frozen)
    # Every silver post is either an item (train split) or counted as left out of val/test, once.
    left_out = frozen.counts["silver_left_out"]
    assert frozen.counts["silver"] == items.count() and items.count() + left_out["val"] + left_out["test"] == n
    assert items.values("post_id").distinct().count() == items.count()


# -- the worker's main process killed: its message is lost (Redis hands it back only after the 12 h
# visibility timeout), so the sweeper resends the job to a new worker, which finishes it.

def kill_worker(worker) -> None:
    """kill -9 the main process and its pool, as a machine losing the worker would."""
    main = psutil.Process(worker.pid)
    children = main.children()
    main.kill()
    for child in children:
        child.kill()
    worker.wait(timeout=20)
    psutil.wait_procs(children, timeout=20)


def sweep_until(predicate, seconds: float, what: str):
    from modeling.services.sweeper import sweep_stale

    def swept():
        report = sweep_stale(stale_seconds=2)
        return predicate(report)

    return wait_until(swept, seconds, what)


@pytest.fixture
def second_worker():
    from tests.conftest import worker_start, worker_stop

    started = []

    def start():
        started.append(worker_start(1, "-second"))
        return started[-1]

    yield start
    for proc in started:
        worker_stop(proc)


@pytest.mark.parametrize("celery_worker_process", [1], indirect=True)
def test_main_process_killed_mid_import_the_sweeper_resends_it_and_every_row_lands_once(celery_worker_process,
                                                                                       second_worker, settings):
    import json

    from annotation.models import ImportBatch
    from annotation.services.importing import import_batch_create
    from annotation.tasks import import_batch_task

    n = 30_000
    path = settings.VAR_DIR / "crash-main-import.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"m{i}", "platform": "tiktok", "text": f"main crash post {i}: my SK2"}) + "\n")
    batch = import_batch_create(path=path, filename="crash-main-import.jsonl")
    import_batch_task.delay(batch.pk)
    wait_until(lambda: ImportBatch.objects.filter(pk=batch.pk, status="running", lines_read__gt=0).exists(), 120,
               "the import to store its first chunk")
    kill_worker(celery_worker_process)
    killed_at = ImportBatch.objects.get(pk=batch.pk).lines_read
    assert 0 < killed_at < n
    second_worker()
    sweep_until(lambda report: f"import #{batch.pk}" in report.resumed, 60, "the sweeper to resend the import")
    done = wait_until(lambda: ImportBatch.objects.filter(pk=batch.pk, status__in=["done", "failed"]).first(), 300,
                      "the import to finish")
    assert done.status == "done", done.failure
    assert Post.objects.count() == n and done.posts_created == n and done.posts_duplicate == 0
    assert done.error_count == 0 and done.resumes == 1


@pytest.mark.parametrize("celery_worker_process", [1], indirect=True)
def test_main_process_killed_mid_prelabel_the_sweeper_resends_what_is_left_and_every_post_is_labelled_once(
        small_kb, fake_gemini, celery_worker_process, second_worker):
    fake_gemini.latency_ms = 250
    posts = [Post.objects.create(platform="test", text=f"OPI and La Mer main #{i}",
                                 content_hash=content_hash(f"main crash {i}")) for i in range(12)]
    run, ids = prelabel_run_create(source="teacher")
    for i in range(0, 12, 6):
        teacher_label_chunk.delay(run.pk, ids[i:i + 6])
    wait_until(lambda: fake_gemini.stats()["requests"] >= 3, 60, "the first teacher calls")
    kill_worker(celery_worker_process)  # one post stays claimed by the dead worker, a chunk is never run
    assert PrelabelRun.objects.get(pk=run.pk).status == "running"
    second_worker()
    sweep_until(lambda report: any(r.startswith(f"pre-label run #{run.pk}") for r in report.resumed), 60,
                "the sweeper to resend the run's unlabelled posts")
    run = wait_until(lambda: PrelabelRun.objects.filter(pk=run.pk, status="done").first(), 120, "the run to finish")
    preds = Prediction.objects.filter(source="teacher")
    assert preds.count() == len(posts) and set(preds.values_list("status", flat=True)) == {"ok"}
    assert sorted(preds.values_list("post_id", flat=True)) == sorted(p.pk for p in posts)
    assert run.done == run.total == 12 and run.resumes >= 1
    assert 12 <= fake_gemini.stats()["requests"] <= 13  # only the call in flight is paid twice


@pytest.mark.parametrize("celery_worker_process", [1], indirect=True)
def test_main_process_killed_mid_training_the_sweeper_resends_it_and_it_resumes_once(kb, short_lease,
                                                                                    celery_worker_process,
                                                                                    second_worker, tmp_path):
    import json
    from pathlib import Path

    from modeling.services import generations as svc
    from modeling.tasks import gpu_train_generation
    from tests.modeling.student_factories import build_tiny_qwen2
    from tests.modeling.test_generations import TINY, _dataset

    backbone = str(build_tiny_qwen2(tmp_path / "tiny"))
    generation = svc.generation_create(dataset_version=_dataset(teacher_posts=2), base_model=backbone, epochs=40,
                                       config={**TINY, "batch_size": 4}, enqueue=False)
    gpu_train_generation.delay(generation.pk)
    checkpoint = Path(generation.artifact_path) / "checkpoint.pt"
    wait_until(checkpoint.exists, 120, "the first checkpoint")
    kill_worker(celery_worker_process)
    assert ModelGeneration.objects.get(pk=generation.pk).status == "training"
    second_worker()
    sweep_until(lambda report: f"gen-{generation.number}" in report.resumed, 60,
                "the lease to lapse and the sweeper to resend the training")
    done = wait_until(lambda: ModelGeneration.objects.filter(pk=generation.pk, status__in=["ready", "promoted", "failed"])
                      .first(), 300, "the generation to finish")
    assert done.status != "failed", done.error
    assert done.step == done.total_steps and done.lease_until is None and done.resumes == 1
    summary = json.loads((Path(done.artifact_path) / "training.json").read_text())
    assert summary["resumed_from"] > 0  # continued from the checkpoint
