from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings

from annotation.models import ImportBatch
from annotation.services.importing import detect_format, import_batch_create, import_batch_run


class UploadTooLarge(ValueError):
    pass


def upload_store(*, uploaded, user) -> ImportBatch:
    """Copy an upload to var/uploads chunk by chunk, create its batch, and run or enqueue the import."""
    limit = settings.IMPORT_MAX_UPLOAD_BYTES
    if uploaded.size > limit:
        raise UploadTooLarge(f"{uploaded.name} is {uploaded.size:,} bytes; the limit is {limit:,}.")
    fmt = detect_format(uploaded.name)
    folder = settings.VAR_DIR / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}{Path(uploaded.name).suffix.lower()}"
    with path.open("wb") as out:
        for chunk in uploaded.chunks():
            out.write(chunk)
    batch = import_batch_create(path=path, filename=Path(uploaded.name).name, user=user, fmt=fmt)
    if batch.size_bytes <= settings.IMPORT_SYNC_MAX_BYTES:
        return import_batch_run(batch=batch, delete_file=True)
    from annotation.tasks import import_batch_task

    import_batch_task.delay_on_commit(batch.pk)
    return batch
