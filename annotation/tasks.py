from celery import shared_task

from annotation.models import ImportBatch
from annotation.services.importing import import_batch_run


@shared_task(name="annotation.tasks.import_batch_task", acks_late=True, reject_on_worker_lost=True)
def import_batch_task(batch_id: int) -> str:
    """A redelivered message finds its batch 'running' (the worker died mid-file): it goes on after the
    last stored chunk, so every row lands exactly once."""
    batch = ImportBatch.objects.filter(pk=batch_id).first()
    if batch is None or batch.status not in (ImportBatch.Status.QUEUED, ImportBatch.Status.RUNNING):
        return "skipped"  # done or failed already: a redelivered message changes nothing
    return import_batch_run(batch=batch, delete_file=True, resume=batch.status == ImportBatch.Status.RUNNING).status


@shared_task(name="annotation.tasks.dataset_freeze_task")
def dataset_freeze_task(version_id: int) -> str:
    from annotation.models import DatasetVersion
    from annotation.services.datasets import DatasetError, dataset_version_freeze

    version = DatasetVersion.objects.filter(pk=version_id).first()
    if version is None or version.status != DatasetVersion.Status.FREEZING:
        return "skipped"  # frozen or failed already: a redelivered message changes nothing
    try:
        return dataset_version_freeze(version=version).status
    except DatasetError:  # recorded on the version row; nothing to retry
        return DatasetVersion.Status.FAILED
