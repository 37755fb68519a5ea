"""Adjudication: a reviewer turns the submitted annotations of a post into its one gold annotation
(accept one as is, or merge spans picked from several; then edit the gold in the editor if needed).
Only gold annotations reach datasets."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from annotation.models import Annotation, Post, Span
from annotation.services.queue import GOLD_PRIORITY


class ReviewError(ValueError):
    pass


def _reviewable(post: Post) -> list[Annotation]:
    return list(
        post.annotations.filter(is_gold=False, status__in=[
            Annotation.Status.SUBMITTED, Annotation.Status.ACCEPTED, Annotation.Status.REJECTED,
        ]).prefetch_related("spans")
    )


def _key(s: Span) -> tuple:
    return (s.start, s.end, s.brand_id, s.brand_text, s.category_id)


Shown = dict[int, int]  # annotation id → the version the reviewer's page showed; the gold's under key 0


def shown_versions(post: Post) -> Shown:
    """What a review page shows, to be sent back with its accept or merge."""
    rows = post.annotations.exclude(is_gold=False, status=Annotation.Status.DRAFT).values_list("pk", "version", "is_gold")
    return {0 if is_gold else pk: version for pk, version, is_gold in rows}


def shown_parse(raw: str) -> Shown | None:
    """"12:3,0:2" (from the review form) → {12: 3, 0: 2}; None when the form sent none."""
    if not raw:
        return None
    try:
        return {int(k): int(v) for k, v in (part.split(":") for part in raw.split(",") if part)}
    except ValueError:
        raise ReviewError("The review form was damaged; reload the page.") from None


def _refuse_if_changed(post: Post, shown: Shown | None) -> None:
    if shown is not None and shown_versions(post) != shown:
        raise ReviewError("This post's annotations changed since you opened the page (an annotator reopened "
                          "or resubmitted, or another reviewer decided); reload it and review again.")


@transaction.atomic
def gold_set(*, post: Post, reviewer, spans: list[Span], is_beauty: bool | None, no_brands: bool | None = None,
             shown: Shown | None = None) -> Annotation:
    """Write the post's gold annotation (created, or replaced if a reviewer adjudicates again) and mark
    each submitted annotation accepted if it matches the gold exactly, rejected otherwise. With `shown`
    (the versions the reviewer saw), refuses when anything changed since."""
    Post.objects.select_for_update().filter(pk=post.pk).values_list("pk", flat=True).first()
    _refuse_if_changed(post, shown)
    spans = sorted(spans, key=lambda s: (s.start, s.end))
    for a, b in zip(spans, spans[1:]):
        if b.start < a.end:
            raise ReviewError(f"“{a.text}” and “{b.text}” overlap; pick one of them.")
    now = timezone.now()
    gold = post.annotations.filter(is_gold=True).first()
    if gold is None:
        gold = Annotation.objects.create(
            post=post, annotator=reviewer, is_gold=True, origin=Annotation.Origin.REVIEW,
            status=Annotation.Status.ACCEPTED, submitted_at=now,
        )
    else:
        gold.spans.all().delete()
        gold.annotator, gold.origin, gold.submitted_at = reviewer, Annotation.Origin.REVIEW, now
        gold.version += 1
        gold.undo_log = []
    gold.is_beauty = is_beauty
    gold.no_brands = not spans if no_brands is None else no_brands
    gold.save()
    Span.objects.bulk_create([
        Span(annotation=gold, start=s.start, end=s.end, text=s.text, brand_id=s.brand_id, brand_text=s.brand_text,
             category_id=s.category_id, suggested_by=s.suggested_by)
        for s in spans
    ])
    gold_keys = {_key(s) for s in spans}
    for a in _reviewable(post):
        matches = {_key(s) for s in a.spans.all()} == gold_keys and a.is_beauty == is_beauty
        a.status = Annotation.Status.ACCEPTED if matches else Annotation.Status.REJECTED
        a.save(update_fields=["status", "updated_at"])
    Post.objects.filter(pk=post.pk).update(priority=GOLD_PRIORITY)
    return gold


def gold_accept(*, annotation: Annotation, reviewer, shown: Shown | None = None) -> Annotation:
    """Take one annotator's work as the gold."""
    with transaction.atomic():
        Post.objects.select_for_update().filter(pk=annotation.post_id).values_list("pk", flat=True).first()
        annotation.refresh_from_db()
        if annotation.is_gold or annotation.status == Annotation.Status.DRAFT:
            raise ReviewError("Only submitted annotations can become gold.")
        return gold_set(post=annotation.post, reviewer=reviewer, spans=list(annotation.spans.all()),
                        is_beauty=annotation.is_beauty, no_brands=annotation.no_brands, shown=shown)


def gold_merge(*, post: Post, reviewer, span_ids: list[int], is_beauty: bool | None, shown: Shown | None = None,
               confirm_empty: bool = True) -> Annotation:
    """Gold = the spans the reviewer ticked, from any of the submitted annotations of the post.
    The same span ticked in two columns counts once. Nothing ticked makes a gold with no brands, which
    replaces whatever gold there was: only with `confirm_empty`."""
    if not span_ids and not confirm_empty:
        raise ReviewError("No span is ticked: that makes a gold annotation with no brands. Tick “the post names "
                          "no brand” to confirm, or tick the spans to keep.")
    allowed = {a.pk for a in _reviewable(post)}
    picked: dict[tuple, Span] = {}
    for s in Span.objects.filter(pk__in=span_ids, annotation_id__in=allowed).order_by("start", "end", "pk"):
        picked.setdefault(_key(s), s)
    if len(picked) < len(set(map(int, span_ids))) and not picked:
        raise ReviewError("Those spans do not belong to this post's annotations.")
    by_bounds: dict[tuple[int, int], Span] = {}
    for s in picked.values():
        if (s.start, s.end) in by_bounds:
            raise ReviewError(f"Two versions of “{s.text}” are ticked (different brand or category); keep one.")
        by_bounds[(s.start, s.end)] = s
    return gold_set(post=post, reviewer=reviewer, spans=list(picked.values()), is_beauty=is_beauty, shown=shown)
