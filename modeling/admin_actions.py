"""Admin actions that pre-label the selected posts, or the posts of the selected import batches.

Attached to PostAdmin and ImportBatchAdmin (annotation/admin.py) via `actions = [*PRELABEL_ACTIONS]`.
"""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from annotation.models import ImportBatch, Post
from modeling.services.prelabel import SourceUnavailable, prelabel_run_start


def _posts_of(queryset):
    if queryset.model is ImportBatch:
        return Post.objects.filter(import_batch__in=queryset)
    return queryset


def _prelabel(source: str):
    def action(modeladmin, request, queryset):
        try:
            run = prelabel_run_start(source=source, posts=list(_posts_of(queryset).only("pk")), user=request.user)
        except SourceUnavailable as exc:
            modeladmin.message_user(request, str(exc), level=messages.ERROR)
            return
        url = reverse("prelabel_run", args=[run.pk])
        modeladmin.message_user(
            request, format_html('Pre-labelling run #{} with the {}: {} posts to label. <a href="{}">Follow its progress</a>.',
                                 run.pk, source, run.total, url), level=messages.SUCCESS)

    action.__name__ = f"prelabel_{source}"
    return admin.action(description=f"Pre-label with the {source}")(action)


prelabel_teacher = _prelabel("teacher")
prelabel_gazetteer = _prelabel("gazetteer")
prelabel_student = _prelabel("student")
PRELABEL_ACTIONS = [prelabel_teacher, prelabel_gazetteer, prelabel_student]
