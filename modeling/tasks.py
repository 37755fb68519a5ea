"""Celery tasks of the modeling app: thin, idempotent (unique keys + early return), enqueued on commit.

Routing is by name (beautybrain_app.settings.CELERY_TASK_ROUTES): `teacher_*` go to the `teacher`
queue (I/O bound: run that worker with `--pool threads -c 8`), `student_*` to `student`; the
gazetteer is cheap CPU work on `default`.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from modeling.services.prelabel import prelabel_chunk_or_fail
# Imported here so a prefork worker loads the SDK once, before forking, not in every child's first task.
from modeling.teacher import client as _teacher_client  # noqa: F401


@shared_task(name="modeling.tasks.teacher_label_chunk", acks_late=True, bind=True)
def teacher_label_chunk(self, run_id: int, post_ids: list[int]) -> dict:
    return prelabel_chunk_or_fail(run_id=run_id, post_ids=post_ids, owner=self.request.id or "")


@shared_task(name="modeling.tasks.gazetteer_label_chunk", acks_late=True, bind=True)
def gazetteer_label_chunk(self, run_id: int, post_ids: list[int]) -> dict:
    return prelabel_chunk_or_fail(run_id=run_id, post_ids=post_ids, owner=self.request.id or "")


@shared_task(name="modeling.tasks.student_label_chunk", acks_late=True, bind=True)
def student_label_chunk(self, run_id: int, post_ids: list[int]) -> dict:
    return prelabel_chunk_or_fail(run_id=run_id, post_ids=post_ids, owner=self.request.id or "")


@shared_task(name="modeling.tasks.gpu_train_generation", acks_late=True, reject_on_worker_lost=True, bind=True,
             max_retries=None)
def gpu_train_generation(self, generation_id: int) -> str:
    """Train, evaluate and record one generation. A worker killed mid-run leaves the message unacked, so
    it is redelivered and the run resumes from the generation's last checkpoint. While another worker's
    lease on the generation is fresh (it still runs, or died less than a lease ago) the task waits a
    lease and asks again, so the same generation never trains twice at once."""
    from modeling.services.generations import LEASED, generation_train

    outcome = generation_train(generation_id=generation_id)
    if outcome == LEASED:
        raise self.retry(countdown=settings.GPU_LEASE_SECONDS)
    return outcome


@shared_task(name="modeling.tasks.gpu_export_generation", acks_late=True, reject_on_worker_lost=True)
def gpu_export_generation(generation_id: int, fmt: str | None = None, force: bool = False) -> str:
    """Quantise, evaluate and gate one generation; a redelivered message redoes an unfinished export."""
    from modeling.services.export import generation_export

    return generation_export(generation_id=generation_id, fmt=fmt, force=force).get("state", "")


@shared_task(name="modeling.tasks.flywheel_tick")
def flywheel_tick() -> str:
    """Celery beat's tick: decide here (cheap), hand the training to the gpu queue when the policy says so."""
    from modeling.services.flywheel import flywheel_tick as tick

    row = tick(trigger="beat")
    return row.outcome or row.status if row else "busy"


@shared_task(name="modeling.tasks.sweep_stale")
def sweep_stale() -> dict:
    """Celery beat's sweep: resend (or fail, with the reason) long jobs whose worker died."""
    from modeling.services.sweeper import sweep_stale as sweep

    return sweep().as_dict()


@shared_task(name="modeling.tasks.gpu_flywheel_run", acks_late=True, reject_on_worker_lost=True)
def gpu_flywheel_run(tick_id: int, freeze: bool, epochs: float | None = None) -> str:
    """Freeze → train → evaluate → export → gate for one tick; a redelivered message resumes the same one."""
    from dataclasses import replace

    from modeling.services.flywheel import Policy, flywheel_run

    policy = Policy.from_settings()
    return flywheel_run(tick_id=tick_id, freeze=freeze, policy=replace(policy, epochs=epochs or policy.epochs)).outcome
