from celery import shared_task

from annotation.models import ImportBatch
from annotation.services.importing import import_batch_run


@shared_task(name="annotation.tasks.import_batch_task")
def import_batch_task(batch_id: int) -> str:
    batch = ImportBatch.objects.filter(pk=batch_id, status=ImportBatch.Status.QUEUED).first()
    if batch is None:  # already running or done: a redelivered message must not import twice
        return "skipped"
    return import_batch_run(batch=batch, delete_file=True).status


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
