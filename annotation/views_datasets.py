"""Dataset versions: list and freeze, a version's stats, diff and downloads (admins and reviewers)."""

from django.contrib import messages
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from annotation.datasets.interchange import EXPORT_FILES, MANIFEST_FILE
from annotation.models import DatasetVersion
from beautybrain_app.roles import Role, role_required
from annotation.selectors_datasets import (
    dataset_diff,
    dataset_export_lines,
    dataset_manifest_bytes,
    dataset_versions_list,
)
from annotation.services.datasets import DatasetError, dataset_version_freeze_start

DOWNLOADS = (*EXPORT_FILES, MANIFEST_FILE)


@role_required(Role.ADMIN, Role.REVIEWER)
def dataset_list(request):
    return render(request, "annotation/datasets.html", {"versions": dataset_versions_list()})


@role_required(Role.ADMIN, Role.REVIEWER)
@require_POST
def dataset_freeze(request):
    try:
        version = dataset_version_freeze_start(user=request.user, note=request.POST.get("note", "")[:2000])
    except DatasetError as exc:
        messages.error(request, str(exc))
        return redirect("dataset_list")
    return redirect("dataset_detail", number=version.number)


@role_required(Role.ADMIN, Role.REVIEWER)
def dataset_detail(request, number: int):
    version = get_object_or_404(DatasetVersion.objects.select_related("parent", "created_by"), number=number)
    base, diff = version.parent, (version.counts or {}).get("diff_to_parent")
    against = request.GET.get("against", "")
    if against.isdigit() and version.status == DatasetVersion.Status.FROZEN and int(against) != number:
        # Any other frozen version, diffed on the fly (streamed; the diff to the parent is stored at freezing).
        base = get_object_or_404(DatasetVersion, number=int(against), status=DatasetVersion.Status.FROZEN)
        diff = dataset_diff(base, version)
    context = {"version": version, "downloads": DOWNLOADS, "diff": diff, "base": base}
    if request.htmx:
        response = render(request, "annotation/dataset_detail.html#version-status", context)
        if version.status != DatasetVersion.Status.FREEZING:
            # The finished state replaces the polling element; htmx stops on 286.
            return HttpResponseStopPolling(response.content)
        return response
    return render(request, "annotation/dataset_detail.html", context)


@role_required(Role.ADMIN, Role.REVIEWER)
def dataset_download(request, number: int, filename: str):
    version = get_object_or_404(DatasetVersion, number=number, status=DatasetVersion.Status.FROZEN)
    if filename not in DOWNLOADS:
        raise Http404("No such file in a dataset version.")
    if filename == MANIFEST_FILE:
        content, content_type = iter([dataset_manifest_bytes(version)]), "application/json"
    else:
        content, content_type = dataset_export_lines(version, filename), "application/x-ndjson; charset=utf-8"
    response = StreamingHttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="beautybrain-v{version.number}-{filename}"'
    response["X-Dataset-Sha256"] = version.sha256
    return response
