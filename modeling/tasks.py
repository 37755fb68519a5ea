"""Celery tasks of the modeling app: thin, idempotent (unique keys + early return), enqueued on commit.

Routing is by name (beautybrain_app.settings.CELERY_TASK_ROUTES): `teacher_*` go to the `teacher`
queue (I/O bound: run that worker with `--pool threads -c 8`), `student_*` to `student`; the
gazetteer is cheap CPU work on `default`.
"""

from __future__ import annotations

from celery import shared_task

from modeling.services.prelabel import prelabel_chunk, prelabel_run_stop


def _label(run_id: int, post_ids: list[int]) -> dict:
    try:
        return prelabel_chunk(run_id=run_id, post_ids=post_ids)
    except Exception as exc:
        from modeling.models import PrelabelRun

        prelabel_run_stop(run_id=run_id, status=PrelabelRun.Status.FAILED, message=f"{type(exc).__name__}: {exc}")
        raise


@shared_task(name="modeling.tasks.teacher_label_chunk", acks_late=True)
def teacher_label_chunk(run_id: int, post_ids: list[int]) -> dict:
    return _label(run_id, post_ids)


@shared_task(name="modeling.tasks.gazetteer_label_chunk", acks_late=True)
def gazetteer_label_chunk(run_id: int, post_ids: list[int]) -> dict:
    return _label(run_id, post_ids)


@shared_task(name="modeling.tasks.student_label_chunk", acks_late=True)
def student_label_chunk(run_id: int, post_ids: list[int]) -> dict:
    return _label(run_id, post_ids)
