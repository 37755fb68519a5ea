from __future__ import annotations

from django.db.models import Count, Q
from django.utils import timezone

from annotation.models import Annotation, ImportBatch, Post, Prediction


def home_stats_for(user, roles: set[str]) -> dict:
    """What each role sees on its home page: what to do next, in numbers."""
    stats: dict = {}
    if {"annotator", "reviewer"} & roles:
        start_of_day = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
        mine = Annotation.objects.filter(annotator=user, is_gold=False)
        stats["done_today"] = mine.filter(submitted_at__gte=start_of_day).count()
        stats["unlabelled"] = Post.objects.exclude(annotations__is_gold=True).exclude(
            annotations__annotator=user).count()
    if {"reviewer", "admin"} & roles:
        stats["awaiting_review"] = (
            Post.objects.filter(annotations__status=Annotation.Status.SUBMITTED)
            .exclude(annotations__is_gold=True).distinct().count()
        )
    if "admin" in roles:
        stats["posts"] = Post.objects.count()
        stats["gold"] = Annotation.objects.filter(is_gold=True).count()
        stats["predictions"] = dict(
            Prediction.objects.values_list("source").annotate(n=Count("id")).values_list("source", "n")
        )
        stats["recent_imports"] = list(ImportBatch.objects.order_by("-created_at")[:5])
    return stats


def import_batches_recent(*, limit: int = 20):
    return ImportBatch.objects.select_related("created_by").order_by("-created_at")[:limit]
