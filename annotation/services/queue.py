"""The work queue: which post an annotator gets next, and how many annotators a post gets.

Order: posts whose pre-labellers (teacher, student, gazetteer) disagree most, then posts the student
is least sure about, then posts nobody has pre-labelled. The order is a number stored on the post
(`Post.priority`), refreshed by `post_priority_refresh` whenever predictions land, so picking the next
post is one indexed query whatever the number of posts.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import combinations
from typing import Iterable

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.models import Annotation, Assignment, Post, Prediction
from kb.linking import normalize

GOLD_PRIORITY = -1.0
# Candidates fetched per pick: more than one so a post locked by a concurrent pick is skipped, not waited on.
CANDIDATES = 5


# --- priority -------------------------------------------------------------------------------

def _brand_key(span: dict) -> str:
    return normalize(span.get("brand") or span.get("text") or "")


def _f1(a: set, b: set) -> float:
    if not a and not b:
        return 1.0
    return 2 * len(a & b) / (len(a) + len(b))


def disagreement_score(predictions: Iterable[Prediction]) -> float:
    """0 = every source says the same; 1 = nothing in common. Mean over source pairs of span-boundary
    and brand disagreement (1 − F1), plus is_beauty disagreement."""
    usable = [p for p in predictions if p.status == Prediction.Status.OK]
    if len(usable) < 2:
        return 0.0
    scores = []
    for a, b in combinations(usable, 2):
        bounds = 1 - _f1({(s["start"], s["end"]) for s in a.spans}, {(s["start"], s["end"]) for s in b.spans})
        brands = 1 - _f1({_brand_key(s) for s in a.spans}, {_brand_key(s) for s in b.spans})
        beauty = 1.0 if None not in (a.is_beauty, b.is_beauty) and a.is_beauty != b.is_beauty else 0.0
        scores.append(max(bounds, brands, beauty) * 0.75 + (bounds + brands + beauty) / 3 * 0.25)
    return sum(scores) / len(scores)


def priority_for(predictions: list[Prediction]) -> float:
    """Lexicographic (disagreement, student uncertainty) in one float; 0 when nothing is pre-labelled.
    Disagreement is rounded to hundredths and scaled so that uncertainty (< 1) only breaks ties."""
    usable = [p for p in predictions if p.status == Prediction.Status.OK]
    if not usable:
        return 0.0
    student = [p for p in usable if p.source == Prediction.Source.STUDENT and p.confidence is not None]
    uncertainty = 1 - max(0.0, min(1.0, student[0].confidence)) if student else 0.0
    return 1.0 + round(disagreement_score(usable) * 100) + uncertainty * 0.99


def _latest_per_source(predictions: list[Prediction]) -> list[Prediction]:
    latest: dict[str, Prediction] = {}
    for p in sorted(predictions, key=lambda p: (p.created_at, p.pk)):
        if p.status == Prediction.Status.OK:
            latest[p.source] = p
    return list(latest.values())


def post_priority_refresh(*, post_ids: Iterable[int]) -> int:
    """Recompute the queue priority of these posts from their latest OK prediction per source.
    Call it after storing predictions (any source). Returns the number of posts updated."""
    post_ids = list(set(post_ids))
    updated = 0
    for i in range(0, len(post_ids), 1000):
        chunk = post_ids[i : i + 1000]
        by_post: dict[int, list[Prediction]] = {pid: [] for pid in chunk}
        for p in Prediction.objects.filter(post_id__in=chunk).only(
            "post_id", "source", "spans", "is_beauty", "confidence", "status", "created_at"
        ):
            by_post[p.post_id].append(p)
        gold = set(Annotation.objects.filter(post_id__in=chunk, is_gold=True).values_list("post_id", flat=True))
        rows = [
            (GOLD_PRIORITY if pid in gold else priority_for(_latest_per_source(preds)), pid)
            for pid, preds in by_post.items()
        ]
        # One prepared UPDATE executed per row: bulk_update's CASE over 1000 ids is ~50x slower here.
        table, qn = Post._meta.db_table, connection.ops.quote_name
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(f"UPDATE {qn(table)} SET {qn('priority')} = %s WHERE {qn('id')} = %s", rows)
        updated += len(rows)
    return updated


# --- how many annotators ----------------------------------------------------------------------

def double_threshold(share: float | None = None) -> str:
    """Posts whose content hash sorts below this string get two annotators. Fixed-width lowercase hex
    compares like the number it spells, so the database can apply the rule itself."""
    share = settings.ANNOTATION_DOUBLE_SHARE if share is None else share
    if share <= 0:
        return ""
    if share >= 1:
        return "g"
    return f"{int(share * 0x10000):04x}"


def annotators_needed(post: Post) -> int:
    return 2 if post.content_hash < double_threshold() else 1


# --- assignments ------------------------------------------------------------------------------

def _expiry():
    return timezone.now() + timedelta(minutes=settings.ANNOTATION_ASSIGNMENT_TTL_MIN)


def _live_assignments(now):
    """Assignments that hold a slot: done, or still within their time."""
    return Assignment.objects.filter(post=OuterRef("pk")).filter(Q(completed_at__isnull=False) | Q(expires_at__gt=now))


def queue_candidates(*, user, now=None, limit: int = CANDIDATES):
    now = now or timezone.now()
    taken = Coalesce(
        Subquery(_live_assignments(now).values("post").annotate(n=Count("pk")).values("n")[:1]), 0
    )
    return (
        Post.objects.filter(priority__gt=GOLD_PRIORITY)
        .exclude(Exists(Annotation.objects.filter(post=OuterRef("pk"), is_gold=True)))
        .exclude(Exists(Assignment.objects.filter(post=OuterRef("pk"), annotator=user)))
        .exclude(Exists(Annotation.objects.filter(post=OuterRef("pk"), annotator=user)))
        .annotate(taken=taken)
        .filter(Q(taken__lt=1) | Q(taken__lt=2, content_hash__lt=double_threshold()))
        .order_by("-priority", "id")
        .only("id", "content_hash", "priority")[:limit]
    )


def assignment_open_for(*, user, now=None) -> Assignment | None:
    now = now or timezone.now()
    return (
        Assignment.objects.filter(annotator=user, completed_at__isnull=True, expires_at__gt=now)
        .order_by("assigned_at", "id")
        .first()
    )


def queue_next(*, user) -> Post | None:
    """The post this annotator should work on now: their open assignment, else a new one."""
    now = timezone.now()
    open_one = assignment_open_for(user=user, now=now)
    if open_one is not None:
        return Post(pk=open_one.post_id)
    for candidate in queue_candidates(user=user, now=now):
        assignment = _assign(post_id=candidate.pk, content_hash=candidate.content_hash, user=user)
        if assignment is not None:
            return Post(pk=candidate.pk)
    return None


def _assign(*, post_id: int, content_hash: str, user) -> Assignment | None:
    """Take a slot on the post, or None when a concurrent pick filled it first. The post row is locked
    (PostgreSQL) or the write transaction is exclusive (SQLite IMMEDIATE), so the recount is exact."""
    now = timezone.now()
    try:
        with transaction.atomic():
            Post.objects.select_for_update().filter(pk=post_id).values_list("pk", flat=True).first()
            taken = Assignment.objects.filter(post_id=post_id).filter(
                Q(completed_at__isnull=False) | Q(expires_at__gt=now)
            ).count()
            need = 2 if content_hash < double_threshold() else 1
            if taken >= need:
                return None
            return Assignment.objects.create(post_id=post_id, annotator=user, expires_at=_expiry())
    except IntegrityError:  # the same annotator picked twice at once: the other request won
        return None


def assignment_release(*, user, post_id: int) -> None:
    """Skip: give the post back to the queue now. The annotator keeps the row, so they do not get it again."""
    Assignment.objects.filter(annotator=user, post_id=post_id, completed_at__isnull=True).update(
        expires_at=timezone.now()
    )


def assignment_renew(*, user, post_id: int) -> None:
    Assignment.objects.filter(annotator=user, post_id=post_id, completed_at__isnull=True).update(expires_at=_expiry())


def assignment_complete(*, user, post_id: int) -> None:
    """Mark done; an annotator who opened the post without an assignment (history, a link) gets one."""
    now = timezone.now()
    updated = Assignment.objects.filter(annotator=user, post_id=post_id).update(completed_at=now)
    if not updated:
        Assignment.objects.get_or_create(
            post_id=post_id, annotator=user, defaults={"expires_at": now, "completed_at": now}
        )
