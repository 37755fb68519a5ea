"""One stream of brand mentions, grouped by post and ordered by post id, whatever the source.

Gold mentions are Span rows of the post's gold annotation; predicted mentions are the entries of the
`spans` JSON of the student's `ok` Prediction for the generation the filters name. Both come through
server-side cursors in chunks (`.iterator(chunk_size=...)`), so memory stays flat however many
mentions there are; every report is one pass over this stream.

In "auto" mode a post with a gold annotation takes its gold mentions only (even none: an annotator
saying "no brands" overrides the model), every other post takes the promoted generation's.
"""

from __future__ import annotations

import heapq
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from itertools import groupby
from operator import itemgetter
from typing import Iterator, NamedTuple

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from annotation.models import Annotation, Post, Prediction, Repost, Span
from reports.filters import SOURCE_AUTO, SOURCE_GOLD, STUDENT_SOURCE, ReportFilters
from kb.linking import normalize
from kb.models import Brand, Category

CHUNK_SIZE = 2000
GOLD = "gold"


@dataclass(slots=True)
class Mention:
    brand_id: int | None  # None: an unlinked mention (a brand not in the KB)
    brand: str  # canonical name, or for an unlinked mention the name given (else the text)
    category: str  # slug, "" when unknown
    text: str
    source: str  # "gold" or the prediction source ("student")
    model_version: str
    confidence: float | None
    # Identity of the brand across mentions: "b<KB id>", or "u:<normalised name>" when unlinked.
    key: str = ""


class PostMentions(NamedTuple):
    post_id: int
    platform: str
    posted_at: datetime | None
    mentions: list[Mention]
    repost: str = ""  # a repost of the post's text: its external id (platform and date are its own)


def _gold_exists(post_ref: str = "pk") -> Exists:
    return Exists(Annotation.objects.filter(post_id=OuterRef(post_ref), is_gold=True))


def _predictions(model_version: str) -> QuerySet[Prediction]:
    return Prediction.objects.filter(source=STUDENT_SOURCE, model_version=model_version, status=Prediction.Status.OK)


def covered_posts(filters: ReportFilters, *, dated_only: bool = False) -> QuerySet[Post]:
    """Posts the chosen source has looked at (with or without mentions): the denominator of rates."""
    posts = Post.objects.filter(filters.post_q(dated_only=dated_only))
    gold = _gold_exists()
    if filters.source == SOURCE_GOLD or (filters.source == SOURCE_AUTO and not filters.model_version):
        return posts.filter(gold)
    predicted = Exists(_predictions(filters.model_version).filter(post_id=OuterRef("pk")))
    if filters.source == SOURCE_AUTO:
        return posts.filter(gold | predicted)
    return posts.filter(predicted)


class MentionStream:
    def __init__(self, filters: ReportFilters, *, dated_only: bool = False, chunk_size: int = CHUNK_SIZE,
                 from_post_id: int | None = None, reposts: bool = True, post_ids: list[int] | None = None):
        self.filters = filters
        self.post_ids = post_ids  # only these posts (a short list)
        self.dated_only = dated_only
        self.from_post_id = from_post_id  # resume at this post (the API's cursor pagination)
        self.chunk_size = chunk_size
        # Small (the KB), read once: cheaper than joining Brand/Category into every mention row.
        self.brand_names: dict[int, str] = dict(Brand.objects.values_list("id", "canonical_name"))
        self.category_slugs: dict[int, str] = dict(Category.objects.values_list("id", "slug"))
        # Keys are built once per brand / unlinked spelling, not once per mention.
        self._linked_keys = {pk: f"b{pk}" for pk in self.brand_names}
        self._unlinked_keys: dict[str, str] = {}
        # Reposts the filters keep, by post: each is volume with the post's mentions (few: read once).
        self.copies: dict[int, list[tuple[str, datetime | None, str]]] = {}
        if reposts:
            for post_id, platform, posted_at, external_id in (
                    Repost.objects.filter(filters.post_q(dated_only=dated_only)).order_by("post_id", "id")
                    .values_list("post_id", "platform", "posted_at", "external_id")):
                self.copies.setdefault(post_id, []).append((platform, posted_at, external_id))

    def unlinked_key(self, name: str) -> str:
        key = self._unlinked_keys.get(name)
        if key is None:
            key = self._unlinked_keys[name] = "u:" + (normalize(name) or name.casefold())
        return key

    def posts(self) -> Iterator[PostMentions]:
        with _read_transaction():
            if not self.copies:
                yield from self._merged_posts()
                return
            for post in self._merged_posts():
                if self.filters.keeps(post.platform, post.posted_at, dated_only=self.dated_only):
                    yield post
                for platform, posted_at, external_id in self.copies.get(post.post_id, ()):
                    yield PostMentions(post.post_id, platform, posted_at, post.mentions, external_id)

    def _post_q(self, prefix: str) -> Q:
        """The filters on the post, or on one of its reposts (a TikTok text reposted on Instagram is in an
        Instagram report)."""
        own = self.filters.post_q(prefix, dated_only=self.dated_only)
        if not self.copies or not own:  # no post condition: every post is in already
            return own
        reposted = Repost.objects.filter(self.filters.post_q(dated_only=self.dated_only)).values("post_id")
        return own | Q(**{f"{prefix}pk__in": reposted})  # a subquery: no bound on the number of reposts

    def _merged_posts(self) -> Iterator[PostMentions]:
        streams = []
        if self.filters.uses_gold:
            streams.append(self._gold_posts())
        if self.filters.model_version:
            streams.append(self._predicted_posts())
        if len(streams) == 1:
            return streams[0]
        # Each post is in exactly one stream (auto mode excludes gold posts from predictions).
        return heapq.merge(*streams, key=itemgetter(0))

    def _gold_posts(self) -> Iterator[PostMentions]:
        spans = Span.objects.filter(annotation__is_gold=True).filter(self._post_q("annotation__post__"))
        if self.filters.category:
            spans = spans.filter(category__slug=self.filters.category)
        if self.from_post_id is not None:
            spans = spans.filter(annotation__post_id__gte=self.from_post_id)
        if self.post_ids is not None:
            spans = spans.filter(annotation__post_id__in=self.post_ids)
        rows = (
            spans.order_by("annotation__post_id", "start", "end")
            .values_list("annotation__post_id", "annotation__post__platform", "annotation__post__posted_at",
                         "brand_id", "brand_text", "category_id", "text")
            .iterator(chunk_size=self.chunk_size)
        )
        names, slugs, linked_keys = self.brand_names, self.category_slugs, self._linked_keys
        for post_id, group in groupby(rows, key=itemgetter(0)):
            mentions = []
            platform = posted_at = None
            for _, platform, posted_at, brand_id, brand_text, category_id, text in group:
                name = names.get(brand_id) if brand_id is not None else None
                if name is None:
                    brand_id, name = None, brand_text or text
                mentions.append(Mention(
                    brand_id=brand_id, brand=name, category=slugs.get(category_id, ""), text=text, source=GOLD,
                    model_version="", confidence=None,
                    key=linked_keys[brand_id] if brand_id is not None else self.unlinked_key(name),
                ))
            yield PostMentions(post_id, platform, posted_at, mentions)

    def _predicted_posts(self) -> Iterator[PostMentions]:
        f = self.filters
        predictions = _predictions(f.model_version).filter(self._post_q("post__"))
        if f.source == SOURCE_AUTO:
            predictions = predictions.filter(~_gold_exists("post_id"))
        if self.from_post_id is not None:
            predictions = predictions.filter(post_id__gte=self.from_post_id)
        if self.post_ids is not None:
            predictions = predictions.filter(post_id__in=self.post_ids)
        rows = (
            predictions.order_by("post_id", "-id")
            .values_list("post_id", "post__platform", "post__posted_at", "source", "model_version", "spans")
            .iterator(chunk_size=self.chunk_size)
        )
        names, category, linked_keys = self.brand_names, f.category, self._linked_keys
        for post_id, group in groupby(rows, key=itemgetter(0)):
            # Several ok rows for one post and version differ only by prompt version: the newest wins.
            _, platform, posted_at, source, model_version, spans = next(group)
            mentions = []
            for span in spans if isinstance(spans, list) else ():
                if not isinstance(span, dict):
                    continue
                slug = span.get("category") or ""
                if category and slug != category:
                    continue
                text = str(span.get("text") or "")
                brand_id = span.get("brand_id")
                name = names.get(brand_id) if type(brand_id) is int else None  # not bool, nor a string
                if name is None:
                    brand_id, name = None, str(span.get("brand") or text)
                confidence = span.get("confidence")
                mentions.append(Mention(
                    brand_id=brand_id, brand=name, category=slug, text=text, source=source,
                    model_version=model_version,
                    confidence=float(confidence) if isinstance(confidence, (int, float)) else None,
                    key=linked_keys[brand_id] if brand_id is not None else self.unlinked_key(name),
                ))
            if mentions:
                yield PostMentions(post_id, platform, posted_at, mentions)


@contextmanager
def _read_transaction():
    """On PostgreSQL in autocommit mode Django declares its server-side cursors WITH HOLD, which makes the
    server compute and store the whole result before the first row; inside a transaction rows flow as
    they are produced. (Not on SQLite, where a transaction here would take the write lock for as long
    as the download lasts.)"""
    if connection.vendor == "postgresql" and connection.get_autocommit():
        with transaction.atomic():
            yield
    else:
        yield


# --- time buckets ------------------------------------------------------------------------------

def bucket_start(moment: datetime | date, bucket: str) -> date:
    """Buckets are UTC calendar days, ISO weeks (starting Monday) and calendar months."""
    day = moment.astimezone(dt_timezone.utc).date() if isinstance(moment, datetime) else moment
    if bucket == "day":
        return day
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def bucket_next(start: date, bucket: str) -> date:
    if bucket == "day":
        return start + timedelta(days=1)
    if bucket == "week":
        return start + timedelta(days=7)
    return date(start.year + (start.month == 12), start.month % 12 + 1, 1)


def bucket_previous(start: date, bucket: str) -> date:
    if bucket == "day":
        return start - timedelta(days=1)
    if bucket == "week":
        return start - timedelta(days=7)
    return date(start.year - (start.month == 1), (start.month - 2) % 12 + 1, 1)


def bucket_range(first: date, last: date, bucket: str) -> list[date]:
    out, current = [], first
    while current <= last:
        out.append(current)
        current = bucket_next(current, bucket)
    return out
