"""The sweeper: a periodic task that finds long jobs nobody is running any more and resumes or fails them.

A job is stale when its heartbeat (the row's `updated_at`, which every progress write sets; for a
training, its lease) is older than SWEEP_STALE_SECONDS while the row still says queued or running, and
no job of its kind (on its queue) moved in that time either: a job waiting behind a long one is queued,
not lost. That
happens when a worker's main process dies: with the embedded filesystem broker its message is gone, and
with Redis it comes back only after the visibility timeout (hours). Every job here is idempotent, so the
sweeper re-sends it and the job continues what is left: an import reads past its stored lines, a freeze
clears its leftovers, a training resumes from its checkpoint, a pre-label run gets its unlabelled posts.
After SWEEP_MAX_RESUMES re-sends without finishing, the row fails with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation.models import DatasetVersion, ImportBatch, Prediction
from modeling.models import ModelGeneration, PrelabelRun

log = logging.getLogger(__name__)

Status = ModelGeneration.Status


@dataclass
class SweepReport:
    resumed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"resumed": self.resumed, "failed": self.failed}


def sweep_stale(*, stale_seconds: float | None = None, max_resumes: int | None = None) -> SweepReport:
    """One pass over imports, freezes, pre-label runs, trainings and exports; each stale row is claimed by a
    compare-and-swap on its heartbeat, so two sweepers never both resend it."""
    stale = timedelta(seconds=settings.SWEEP_STALE_SECONDS if stale_seconds is None else stale_seconds)
    limit = settings.SWEEP_MAX_RESUMES if max_resumes is None else max_resumes
    before = timezone.now() - stale
    report = SweepReport()
    for sweep in (_sweep_imports, _sweep_freezes, _sweep_prelabel_runs, _sweep_trainings, _sweep_exports):
        sweep(before, limit, report)
    if report.resumed or report.failed:
        log.warning("sweeper", extra=report.as_dict())
    return report


def _gave_up(what: str, resumes: int) -> str:
    return (f"stalled: no progress after the sweeper resent it {resumes} times; {what}")[:2000]


def _sweep_imports(before, limit: int, report: SweepReport) -> None:
    from annotation.tasks import import_batch_task

    live = [ImportBatch.Status.QUEUED, ImportBatch.Status.RUNNING]
    if ImportBatch.objects.filter(status__in=live, updated_at__gte=before).exists():
        return  # imports are moving: the others wait their turn
    for batch in ImportBatch.objects.filter(status__in=live, updated_at__lt=before):
        name = f"import #{batch.pk}"
        claim = ImportBatch.objects.filter(pk=batch.pk, status__in=live, updated_at=batch.updated_at)
        if not batch.stored_path or not Path(batch.stored_path).exists():
            why = ("the request that imported it ended before it finished (an API batch is not resumable)"
                   if not batch.stored_path else "its uploaded file is gone, so it cannot be resumed")
            if claim.update(status=ImportBatch.Status.FAILED, failure=f"stalled: {why}; "
                            f"{batch.lines_read} lines were read", finished_at=timezone.now()):
                report.failed.append(name)
        elif batch.resumes >= limit:
            if claim.update(status=ImportBatch.Status.FAILED, finished_at=timezone.now(),
                            failure=_gave_up(f"{batch.lines_read} lines were read; upload the rest again", limit)):
                report.failed.append(name)
        elif claim.update(resumes=batch.resumes + 1, updated_at=timezone.now()):
            transaction.on_commit(lambda pk=batch.pk: import_batch_task.delay(pk))
            report.resumed.append(name)


def _sweep_freezes(before, limit: int, report: SweepReport) -> None:
    from annotation.tasks import dataset_freeze_task

    if DatasetVersion.objects.filter(status=DatasetVersion.Status.FREEZING, updated_at__gte=before).exists():
        return
    for version in DatasetVersion.objects.filter(status=DatasetVersion.Status.FREEZING, updated_at__lt=before):
        name = f"v{version.number}"
        claim = DatasetVersion.objects.filter(pk=version.pk, status=DatasetVersion.Status.FREEZING,
                                              updated_at=version.updated_at)
        if version.resumes >= limit:
            if claim.update(status=DatasetVersion.Status.FAILED, error=_gave_up("freeze a new version", limit)):
                from annotation.models import DatasetItem

                DatasetItem.objects.filter(version_id=version.pk).delete()
                report.failed.append(name)
        elif claim.update(resumes=version.resumes + 1, updated_at=timezone.now()):
            transaction.on_commit(lambda pk=version.pk: dataset_freeze_task.delay(pk))
            report.resumed.append(name)


def prelabel_run_remaining(run: PrelabelRun) -> list[int]:
    """The run's posts that have no final prediction from its source yet (errors and claims are not final)."""
    finished = set(Prediction.objects.filter(post_id__in=run.post_ids, source=run.source, model_version=run.model_version)
                   .exclude(status=Prediction.Status.ERROR).values_list("post_id", flat=True))
    return [pk for pk in run.post_ids if pk not in finished]


def _sweep_prelabel_runs(before, limit: int, report: SweepReport) -> None:
    from modeling import tasks
    from modeling.services.prelabel import CHUNK_SIZES, CLAIM_REASON

    live = [PrelabelRun.Status.QUEUED, PrelabelRun.Status.RUNNING]
    moving = set(PrelabelRun.objects.filter(status__in=live, updated_at__gte=before).values_list("source", flat=True))
    for run in PrelabelRun.objects.filter(status__in=live, updated_at__lt=before).exclude(source__in=moving):
        name = f"pre-label run #{run.pk} ({run.source})"
        claim = PrelabelRun.objects.filter(pk=run.pk, status__in=live, updated_at=run.updated_at)
        remaining = prelabel_run_remaining(run)
        if not remaining:
            if claim.update(status=PrelabelRun.Status.DONE, done=run.total, finished_at=timezone.now()):
                report.resumed.append(f"{name}: every post was labelled, marked done")
            continue
        if run.resumes >= limit or not run.post_ids:
            message = _gave_up(f"{len(remaining)} posts unlabelled; start a new run for them", limit) if run.post_ids \
                else "stalled: no progress, and this run predates resumable runs; start a new one"
            if claim.update(status=PrelabelRun.Status.FAILED, message=message, finished_at=timezone.now()):
                report.failed.append(name)
            continue
        # `done` from what the database holds, so the resent chunks finish the count at `total`.
        if not claim.update(resumes=run.resumes + 1, done=run.total - len(remaining), updated_at=timezone.now()):
            continue
        # A post claimed by the dead worker would be skipped as someone else's for CLAIM_TTL: let go of it.
        Prediction.objects.filter(
            post_id__in=remaining, source=run.source, model_version=run.model_version, status=Prediction.Status.ERROR,
            status_reason__startswith=CLAIM_REASON, updated_at__lt=before,
        ).update(status_reason="claim released by the sweeper: its worker died", updated_at=timezone.now())
        task = {"teacher": tasks.teacher_label_chunk, "gazetteer": tasks.gazetteer_label_chunk,
                "student": tasks.student_label_chunk}[run.source]
        size = CHUNK_SIZES[run.source]
        for i in range(0, len(remaining), size):
            task.delay_on_commit(run.pk, remaining[i:i + size])
        report.resumed.append(f"{name}: {len(remaining)} posts resent")


def _sweep_trainings(before, limit: int, report: SweepReport) -> None:
    from modeling.tasks import gpu_train_generation

    if ModelGeneration.objects.filter(lease_until__gte=before).exists():
        return  # a gpu worker is training: queued generations wait for it
    lapsed = Q(lease_until__isnull=True) | Q(lease_until__lt=before)
    # A queued generation whose message was lost never gets a lease: its age is its staleness.
    stale = (Q(status__in=[Status.TRAINING, Status.EVALUATING]) & lapsed) | Q(status=Status.QUEUED, created_at__lt=before,
                                                                              started_at__isnull=True)
    for generation in ModelGeneration.objects.filter(stale):
        name = f"gen-{generation.number}"
        with transaction.atomic():
            row = ModelGeneration.objects.select_for_update().get(pk=generation.pk)
            if row.status != generation.status or (row.lease_until and row.lease_until >= before):
                continue  # it moved on meanwhile
            if row.resumes >= limit:
                row.status, row.error = Status.FAILED, _gave_up("train a new generation", limit)
                row.finished_at, row.lease_owner, row.lease_until = timezone.now(), "", None
                row.save(update_fields=["status", "error", "finished_at", "lease_owner", "lease_until"])
                report.failed.append(name)
                continue
            row.resumes += 1
            row.save(update_fields=["resumes"])
            transaction.on_commit(lambda pk=row.pk: gpu_train_generation.delay(pk))
            report.resumed.append(name)


def _sweep_exports(before, limit: int, report: SweepReport) -> None:
    """An export whose worker died: `exporting` (so not promotable) or a queued export whose message was
    lost, with no lease beating. Re-sent from scratch (an export is redone whole); failed with the reason,
    the generation back to ready and serving unquantised, after `limit` re-sends."""
    from modeling.models import ExportState
    from modeling.tasks import gpu_export_generation

    if ModelGeneration.objects.filter(lease_until__gte=before).exists():
        return  # a gpu worker is busy: a queued export waits for it
    lapsed = Q(lease_until__isnull=True) | Q(lease_until__lt=before)
    running = Q(status=Status.EXPORTING) | Q(export_metrics__state__in=[ExportState.RUNNING, ExportState.QUEUED])
    for generation in ModelGeneration.objects.filter(running & lapsed):
        metrics = generation.export_metrics or {}
        since = metrics.get("started_at") or metrics.get("queued_at") or ""
        if since and since >= before.isoformat():
            continue  # just sent: not stale yet
        name = f"gen-{generation.number} export"
        with transaction.atomic():
            row = ModelGeneration.objects.select_for_update().get(pk=generation.pk)
            if row.export_metrics != generation.export_metrics or (row.lease_until and row.lease_until >= before):
                continue  # it moved on meanwhile
            resumes = int(metrics.get("resumes") or 0)
            if resumes >= limit:
                row.export_metrics = {**metrics, "state": ExportState.ERROR, "passed": False,
                                      "error": _gave_up("export it again from the admin", limit)}
                if row.status == Status.EXPORTING:
                    row.status = Status.READY
                row.save(update_fields=["export_metrics", "status"])
                report.failed.append(name)
                continue
            row.export_metrics = {**metrics, "resumes": resumes + 1}
            row.save(update_fields=["export_metrics"])
            fmt = metrics.get("format") or None
            transaction.on_commit(lambda pk=row.pk, fmt=fmt: gpu_export_generation.delay(pk, fmt, False))
            report.resumed.append(name)
