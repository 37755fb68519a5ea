from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseStopPolling

from annotation.models import ImportBatch
from beautybrain_app.roles import Role, role_required
from annotation.selectors import import_batches_recent
from annotation.services.uploads import upload_store


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def import_upload(request):
    if request.method == "POST":
        # Refuse oversized bodies before Django spools them anywhere.
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        limit = settings.IMPORT_MAX_UPLOAD_BYTES
        if declared > limit + 65536:
            messages.error(request, f"The file is larger than the upload limit ({limit:,} bytes).")
            return render(request, "annotation/import.html", {"batches": import_batches_recent()}, status=413)
        uploaded = request.FILES.get("file")
        if uploaded is None:
            messages.error(request, "Choose a .jsonl or .csv file to import.")
        else:
            try:
                batch = upload_store(uploaded=uploaded, user=request.user)
            except ValueError as exc:  # UploadTooLarge, or a file type we cannot read
                messages.error(request, str(exc))
            else:
                return redirect("import_detail", pk=batch.pk)
        return render(request, "annotation/import.html", {"batches": import_batches_recent()}, status=400)
    return render(request, "annotation/import.html", {"batches": import_batches_recent()})


@role_required(Role.ADMIN)
def import_detail(request, pk: int):
    batch = get_object_or_404(ImportBatch, pk=pk)
    if request.htmx:
        response = render(request, "annotation/import_detail.html#batch-status", {"batch": batch})
        if batch.status in (ImportBatch.Status.DONE, ImportBatch.Status.FAILED):
            return HttpResponseStopPolling(response.content)
        return response
    return render(request, "annotation/import_detail.html", {"batch": batch})


