"""Reads behind /api/: one post with its labels, and pages of the reports' mention stream."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.core import signing
from django.db.models import Prefetch

from annotation.models import Annotation, Post, Prediction, Span
from reports.filters import ReportFilters
from reports.mentions import MentionStream

CURSOR_SALT = "api.mentions.cursor"


class CursorError(ValueError):
    pass


def post_detail(*, post_id: int) -> dict | None:
    """The post in the interchange format, its gold labels (if any) and every prediction made of it."""
    gold = Annotation.objects.filter(is_gold=True).prefetch_related(
        Prefetch("spans", queryset=Span.objects.select_related("brand", "category").order_by("start", "end")))
    post = (Post.objects.filter(pk=post_id)
            .prefetch_related(Prefetch("annotations", queryset=gold, to_attr="gold"),
                              Prefetch("predictions", queryset=Prediction.objects.order_by("source", "-created_at")))
            .first())
    if post is None:
        return None
    annotation = post.gold[0] if post.gold else None
    return {
        "post_id": post.pk, "id": post.external_id, "platform": post.platform, "text": post.text,
        "posted_at": post.posted_at, "author": post.author, "url": post.url, "lang": post.lang, "source": post.source,
        "created_at": post.created_at, "import_batch_id": post.import_batch_id,
        "gold": None if annotation is None else {
            "is_beauty": annotation.is_beauty,
            "brands": [{"start": s.start, "end": s.end, "text": s.text,
                        "brand": s.brand.canonical_name if s.brand else (s.brand_text or s.text),
                        "brand_id": s.brand_id, "category": s.category.slug if s.category else None}
                       for s in annotation.spans.all()],
        },
        "predictions": [{"source": p.source, "model_version": p.model_version, "status": p.status,
                         "is_beauty": p.is_beauty, "brands": p.spans if isinstance(p.spans, list) else [],
                         "created_at": p.created_at}
                        for p in post.predictions.all()],
    }


@dataclass
class MentionsPage:
    results: list[dict]
    next_cursor: str | None


def _filters_fingerprint(filters: ReportFilters) -> str:
    # The resolved model version is in it: a cursor taken before a promotion would resume another stream.
    key = {**filters.as_query(), "model_version": filters.model_version}
    key.pop("bucket", None)
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def cursor_encode(*, post_id: int, skip: int, filters: ReportFilters) -> str:
    return signing.dumps([post_id, skip, _filters_fingerprint(filters)], salt=CURSOR_SALT)


def cursor_decode(cursor: str, *, filters: ReportFilters) -> tuple[int, int]:
    try:
        post_id, skip, fingerprint = signing.loads(cursor, salt=CURSOR_SALT)
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise CursorError("Invalid cursor: pass back the `next` value of a previous page unchanged.") from exc
    if fingerprint != _filters_fingerprint(filters):
        raise CursorError("This cursor belongs to other filters (or another generation was promoted since): "
                          "keep the filters of the first page, or start again without a cursor.")
    return int(post_id), int(skip)


def mentions_page(*, filters: ReportFilters, limit: int, cursor: str | None = None) -> MentionsPage:
    """Up to `limit` mentions in the reports' order (post id, then offset) from `cursor` on.

    A cursor is (post id, mentions of that post already sent), signed, so a page may end inside a post.
    """
    from_post, skip = cursor_decode(cursor, filters=filters) if cursor else (None, 0)
    # One entry per stored text: a repost (another id, same text) is volume for the reports, not a second
    # set of mentions here, and the cursor counts mentions within one post.
    stream = MentionStream(filters, from_post_id=from_post, chunk_size=max(100, min(limit + 1, 2000)), reposts=False)
    brand_id = filters.brand_id
    results: list[dict] = []
    posts = stream.posts()
    try:
        for post in posts:
            mentions = [m for m in post.mentions if brand_id is None or m.brand_id == brand_id]
            start = skip if post.post_id == from_post else 0
            for i in range(start, len(mentions)):
                if len(results) == limit:
                    return MentionsPage(results, cursor_encode(post_id=post.post_id, skip=i, filters=filters))
                m = mentions[i]
                results.append({
                    "post_id": post.post_id, "platform": post.platform, "posted_at": post.posted_at,
                    "brand": m.brand, "brand_id": m.brand_id, "brand_linked": m.brand_id is not None,
                    "category": m.category, "text": m.text, "source": m.source, "model_version": m.model_version,
                    "confidence": m.confidence,
                })
    finally:
        posts.close()  # ends the stream's server-side cursor (and its transaction on PostgreSQL) now
    return MentionsPage(results, None)
