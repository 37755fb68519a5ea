from celery import shared_task

from annotation.models import ImportBatch
from annotation.services.importing import import_batch_run


@shared_task(name="annotation.tasks.import_batch_task")
def import_batch_task(batch_id: int) -> str:
    batch = ImportBatch.objects.filter(pk=batch_id, status=ImportBatch.Status.QUEUED).first()
    if batch is None:  # already running or done: a redelivered message must not import twice
        return "skipped"
    return import_batch_run(batch=batch, delete_file=True).status
