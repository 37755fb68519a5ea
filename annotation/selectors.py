from __future__ import annotations

from django.db.models import Count, Min, Q
from django.utils import timezone

from annotation.models import Annotation, ImportBatch, Post, Prediction, Span


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


# --- span editor, review, agreement, progress --------------------------------------------------

# The editor's two reads run on every save, and building and compiling them with the ORM takes several
# times what the database needs to answer them (bench/editor.py measures the save), so they are SQL
# written once: plain SQL that SQLite and PostgreSQL both take, rows still built by the models.
_EDITOR_ANNOTATION_SQL = (
    f"SELECT a.*, p.text AS post_text FROM {Annotation._meta.db_table} a"
    f" INNER JOIN {Post._meta.db_table} p ON p.id = a.post_id WHERE a.post_id = %s AND "
)
_EDITOR_SPANS_SQL = f"SELECT * FROM {Span._meta.db_table} WHERE annotation_id = %s"


def editor_annotation(*, post_id: int, annotator_id: int | None) -> Annotation | None:
    """The annotation the editor works on: the annotator's own one on the post, or the post's gold one
    when `annotator_id` is None (unique constraints allow one of each). Its post carries only the text;
    the other fields are deferred (the editor page loads the whole post). One query."""
    if annotator_id is None:
        rows = Annotation.objects.raw(_EDITOR_ANNOTATION_SQL + "a.is_gold", [post_id])
    else:
        rows = Annotation.objects.raw(_EDITOR_ANNOTATION_SQL + "a.annotator_id = %s AND NOT a.is_gold",
                                      [post_id, annotator_id])
    annotation = next(iter(rows), None)
    if annotation is not None:
        annotation.post = Post.from_db(annotation._state.db, ["id", "text"], [annotation.post_id, annotation.post_text])
        del annotation.post_text
    return annotation


def editor_spans(*, annotation_id: int) -> list[Span]:
    """The annotation's spans, in no particular order, without brand or category. One query."""
    return list(Span.objects.raw(_EDITOR_SPANS_SQL, [annotation_id]))


# The teacher explains itself, so it comes first; the gazetteer is the baseline, last.
SOURCE_ORDER = {"teacher": 0, "student": 1, "gazetteer": 2}

def editor_state(*, annotation: Annotation) -> dict:
    """What the editor's side panel shows: the annotation's spans, the suggestions of each source
    (newest prediction per source, each marked accepted / rejected / open), and the categories.
    Three queries whatever the size of the post."""
    from kb.models import Category

    spans = list(annotation.spans.select_related("brand", "category"))
    for s in spans:
        s.source = s.suggested_by.split(":", 1)[0]
    categories = list(Category.objects.all())
    by_slug = {c.slug: c for c in categories}
    have = {(s.start, s.end) for s in spans}
    sources = []
    seen: set[str] = set()
    newest_first = annotation.post.predictions.filter(status=Prediction.Status.OK).order_by("-created_at", "-pk")
    for p in sorted(newest_first, key=lambda p: SOURCE_ORDER.get(p.source, 9)):
        if p.source in seen:
            continue
        seen.add(p.source)
        items = []
        for s in p.spans:
            key = f"{p.source}:{s['start']}:{s['end']}"
            state = "accepted" if (s["start"], s["end"]) in have else "rejected" if key in annotation.dismissed else "open"
            items.append({**s, "key": key, "state": state, "category_obj": by_slug.get(s.get("category") or "")})
        sources.append({
            "prediction": p, "source": p.source, "items": items,
            "open": sum(i["state"] == "open" for i in items),
        })
    return {"spans": spans, "sources": sources, "categories": categories}


def my_history(*, user, limit: int = 200) -> list[int]:
    """Post ids this annotator has worked on, oldest first (previous/next post in the editor)."""
    ids = (Annotation.objects.filter(annotator=user, is_gold=False).order_by("-created_at", "-pk")
           .values_list("post_id", flat=True)[:limit])
    return list(reversed(ids))


def review_queue(*, limit: int = 50, offset: int = 0) -> tuple[list[Post], int]:
    """Posts with submitted annotations and no gold yet, oldest submission first. Two queries."""
    waiting = (
        Post.objects.filter(annotations__status=Annotation.Status.SUBMITTED, annotations__is_gold=False)
        .exclude(annotations__is_gold=True)
        .annotate(submitted=Count("annotations", filter=Q(annotations__status=Annotation.Status.SUBMITTED)),
                  first_submitted=Min("annotations__submitted_at"))
    )
    total = waiting.count()
    posts = list(waiting.order_by("first_submitted", "id")[offset : offset + limit])
    return posts, total


def review_state(*, post: Post) -> dict:
    """Every annotator's submitted work and every source's suggestions on one post, with the spans that
    not all of them share marked as differences. Constant queries."""
    annotations = list(
        post.annotations.filter(is_gold=False).exclude(status=Annotation.Status.DRAFT)
        .select_related("annotator").prefetch_related("spans__brand", "spans__category")
        .order_by("submitted_at", "pk")
    )
    gold = post.annotations.filter(is_gold=True).prefetch_related("spans__brand", "spans__category").first()
    predictions = []
    seen: set[str] = set()
    newest_first = post.predictions.filter(status=Prediction.Status.OK).order_by("-created_at", "-pk")
    for p in sorted(newest_first, key=lambda p: SOURCE_ORDER.get(p.source, 9)):
        if p.source not in seen:
            seen.add(p.source)
            predictions.append(p)

    def key(s) -> tuple:
        return (s.start, s.end, s.brand_id or normalize_brand(s.brand_text or s.text), s.category_id)

    keyed = [{key(s) for s in a.spans.all()} for a in annotations]
    common = set.intersection(*keyed) if keyed else set()
    columns = []
    for a, keys in zip(annotations, keyed):
        columns.append({
            "annotation": a,
            "spans": [{"span": s, "differs": key(s) not in common, "id": s.pk} for s in a.spans.all()],
        })
    return {"columns": columns, "predictions": predictions, "gold": gold}


def normalize_brand(text: str) -> str:
    from kb.linking import normalize

    return normalize(text)


def agreement_report() -> dict:
    """Agreement between annotators over posts that two or more of them submitted. Two queries."""
    from annotation.agreement import agreement

    done = Annotation.objects.filter(is_gold=False, status__in=[
        Annotation.Status.SUBMITTED, Annotation.Status.ACCEPTED, Annotation.Status.REJECTED])
    multi = done.values("post_id").annotate(n=Count("pk")).filter(n__gte=2).values("post_id")
    rows = list(done.filter(post_id__in=multi).values_list("pk", "post_id", "annotator__username", "is_beauty"))
    spans: dict[int, set] = {pk: set() for pk, *_ in rows}
    for ann, start, end in Span.objects.filter(annotation_id__in=spans.keys()).values_list("annotation_id", "start", "end"):
        spans[ann].add((start, end))
    return agreement([
        {"post": post, "annotator": name, "is_beauty": beauty, "spans": spans[pk]} for pk, post, name, beauty in rows
    ])


def progress_report(*, today=None) -> dict:
    """Per annotator and overall: done today, queue left, median seconds per post, share of spans that
    are suggestions taken unchanged. Four queries whatever the number of annotators."""
    from statistics import median

    now = timezone.now()
    start_of_day = today or now.replace(hour=0, minute=0, second=0, microsecond=0)
    open_posts = Post.objects.exclude(annotations__is_gold=True).count()
    submitted = Annotation.objects.filter(is_gold=False, submitted_at__isnull=False)
    per: dict[str, dict] = {}
    rows = submitted.values_list("annotator__username", "submitted_at", "active_seconds", "suggestions_accepted", "pk")
    ann_user: dict[int, str] = {}
    for name, at, seconds, kept, pk in rows:
        p = per.setdefault(name, {"name": name, "done_today": 0, "done": 0, "seconds": [], "kept": 0, "spans": 0})
        p["done"] += 1
        p["done_today"] += at >= start_of_day
        p["seconds"].append(seconds)
        p["kept"] += kept
        ann_user[pk] = name
    for ann_id, n in Span.objects.filter(annotation__in=submitted).values_list("annotation_id").annotate(n=Count("pk")):
        per[ann_user[ann_id]]["spans"] += n
    touched = dict(
        Annotation.objects.filter(is_gold=False).exclude(post__annotations__is_gold=True)
        .values_list("annotator__username").annotate(n=Count("post", distinct=True))
    )

    def finish(p: dict) -> dict:
        p["median_seconds"] = median(p["seconds"]) if p["seconds"] else None
        p["kept_share"] = p["kept"] / p["spans"] if p["spans"] else None
        return p

    annotators = [finish(p) for p in sorted(per.values(), key=lambda p: p["name"])]
    for p in annotators:
        p["queue_left"] = max(0, open_posts - touched.get(p["name"], 0))
    overall = finish({
        "name": "all", "done_today": sum(p["done_today"] for p in annotators), "done": sum(p["done"] for p in annotators),
        "seconds": [s for p in annotators for s in p["seconds"]], "kept": sum(p["kept"] for p in annotators),
        "spans": sum(p["spans"] for p in annotators),
    })
    overall["queue_left"] = open_posts
    return {"annotators": annotators, "overall": overall}


def brand_candidates(*, limit: int = 200) -> list[dict]:
    """Unlinked mentions (spans without a KB brand) grouped by normalised form, most frequent first:
    the admins' list of brands the KB is missing. Two queries."""
    from collections import Counter

    from kb.linking import normalize
    from kb.models import Category

    groups: dict[str, dict] = {}
    rows = Span.objects.filter(brand__isnull=True).values_list("text", "brand_text", "category__slug", "annotation__post_id")
    for text, brand_text, category, post_id in rows:
        key = normalize(brand_text or text)
        if not key:
            continue
        g = groups.setdefault(key, {"normalized": key, "count": 0, "forms": Counter(), "categories": Counter(), "posts": set()})
        g["count"] += 1
        g["forms"][brand_text or text] += 1
        if category:
            g["categories"][category] += 1
        g["posts"].add(post_id)
    categories = {c.slug: c for c in Category.objects.all()}
    out = []
    for g in sorted(groups.values(), key=lambda g: (-g["count"], g["normalized"]))[:limit]:
        slug = g["categories"].most_common(1)[0][0] if g["categories"] else "other"
        out.append({
            "normalized": g["normalized"], "count": g["count"], "posts": len(g["posts"]),
            "name": g["forms"].most_common(1)[0][0], "forms": [f for f, _ in g["forms"].most_common(5)],
            "category": categories.get(slug),
        })
    return out


def alias_candidates(*, limit: int = 200, min_mentions: int = 1) -> list[dict]:
    """Forms the teacher writes for brands the KB has, under a name the KB lacks (兰蔻 for Lancôme,
    "CT" for Charlotte Tilbury): proposed to admins as aliases, most mentioned first. A form that is
    already some brand's alias, or that an admin rejected for that brand, is not proposed."""
    from collections import Counter

    from kb.index import get_index
    from kb.linking import normalize
    from kb.models import AliasRejection

    index = get_index()
    rejected = set(AliasRejection.objects.values_list("normalized", "brand_id"))
    groups: dict[tuple[str, int], dict] = {}
    rows = Prediction.objects.filter(source="teacher", status=Prediction.Status.OK).values_list("post_id", "spans")
    for post_id, spans in rows.iterator(chunk_size=2000):
        for s in spans or []:
            text, named = s.get("text") or "", s.get("brand")
            key = normalize(text)
            if not key or not isinstance(named, str) or key in index.by_key:
                continue
            entry = index.by_canonical.get(normalize(named))
            if entry is None or (key, entry.brand_id) in rejected:
                continue
            g = groups.setdefault((key, entry.brand_id), {"normalized": key, "brand_id": entry.brand_id,
                                                          "brand": entry.canonical_name, "count": 0,
                                                          "forms": Counter(), "posts": set()})
            g["count"] += 1
            g["forms"][text] += 1
            g["posts"].add(post_id)
    ranked = sorted((g for g in groups.values() if g["count"] >= min_mentions), key=lambda g: (-g["count"], g["normalized"]))
    return [{"normalized": g["normalized"], "brand_id": g["brand_id"], "brand": g["brand"], "count": g["count"],
             "posts": len(g["posts"]), "name": g["forms"].most_common(1)[0][0]} for g in ranked[:limit]]
