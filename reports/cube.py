"""The reports page from materialised aggregates (reports/models.py), refreshed when the data changes.

A pass over a million mentions takes tens of seconds however it is written, so the page does not make
one: `cube_refresh` makes it once per data state (one pass per stream, the same MentionStream the CSV
exports read) and stores counts per UTC day x platform x category x brand, brand pairs per day, and the
posts each stream covers. The page then answers any filter set (dates, platform, category, brand,
source, bucket) with a few GROUP BYs over those rows, and gives the same figures as the pass over the
mentions (tests/reports/test_cube.py compares them over many filter sets).

When the data changes (its fingerprint, a few cheap aggregates): a small database is refreshed inline
on the next page view; a large one is refreshed by the `reports.tasks.cube_refresh` task (Celery beat
every REPORTS_CUBE_SECONDS, and queued by the page), and meanwhile the page shows the last figures and
says since when.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import timedelta
from itertools import combinations

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Exists, F, Max, Min, OuterRef, Q, Sum
from django.utils import timezone

from annotation.models import Annotation, Post, Prediction, Repost
from kb.models import Brand
from reports.aggregates import BrandSummary, CoMentions, Emerging, Labels
from reports.filters import SOURCE_GOLD, STUDENT_SOURCE, ReportFilters
from reports.mentions import MentionStream, bucket_next, bucket_start
from reports.models import CubeCell, CubeLabel, CubePair, CubeState
from reports.page import TABLE_ROWS, data_fingerprint, page_assembled, reports_page_data

GOLD_STREAM = "gold"
BATCH = 5000
Kind = CubeCell.Kind


# --- refresh -----------------------------------------------------------------------------------

def cube_fingerprint() -> str:
    return json.dumps(data_fingerprint(), default=str, sort_keys=True)


def cube_streams() -> list[str]:
    versions = (Prediction.objects.filter(source=STUDENT_SOURCE, status=Prediction.Status.OK).order_by()
                .values_list("model_version", flat=True).distinct())
    return [GOLD_STREAM, *sorted(v for v in versions if v)]


def _stream_filters(stream: str) -> ReportFilters:
    if stream == GOLD_STREAM:
        return ReportFilters(source=SOURCE_GOLD)
    return ReportFilters(source=stream, model_version=stream)


_KEY_BITS, _CATEGORY_BITS = 20, 6  # pairs are counted under one int (memory: ~900k of them at 1M mentions)


class _StreamCounts:
    """Counts of one stream, keyed by an interned (gold, day, platform) base."""

    def __init__(self, stream: str):
        self.stream = stream
        self.bases: dict[tuple, int] = {}
        self.cells: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])  # (base, category, key)
        self.rollups: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])  # (base, kind, category)
        self.pairs: Counter = Counter()  # _pair_code(base, category or None, key_a, key_b)
        self.keys: dict[str, int] = {}
        self.categories: dict[str | None, int] = {None: 0}
        self.labels: dict[tuple, tuple[int, str]] = {}  # (gold, key) -> (first post, spelling)

    def base(self, gold: bool, posted_at, platform: str) -> int:
        day = bucket_start(posted_at, "day") if posted_at is not None else None
        return self.bases.setdefault((gold, day, platform), len(self.bases))

    def _pair_code(self, b: int, category: str | None, a: str, z: str) -> int:
        c = self.categories.setdefault(category, len(self.categories))
        ia, iz = self.keys.setdefault(a, len(self.keys)), self.keys.setdefault(z, len(self.keys))
        return (((b << _CATEGORY_BITS) | c) << 2 * _KEY_BITS) | (ia << _KEY_BITS) | iz

    def feed(self, post, gold: bool) -> None:
        b = self.base(gold, post.posted_at, post.platform)
        repost = 1 if post.repost else 0
        first_category: dict[str, str] = {}
        by_category: dict[str, set] = defaultdict(set)
        category_mentions: Counter = Counter()
        for m in post.mentions:
            key = m.key
            if (gold, key) not in self.labels:
                self.labels[(gold, key)] = (post.post_id, m.brand)
            cell = self.cells[(b, m.category, key)]
            cell[0] += 1
            category_mentions[m.category] += 1
            keys = by_category[m.category]
            if key not in keys:
                keys.add(key)
                cell[1] += 1
                cell[3] += repost
                if key not in first_category:
                    first_category[key] = m.category
                    cell[2] += 1
                    cell[4] += repost
        rollup = self.rollups[(b, Kind.POSTS, "")]
        rollup[0] += len(post.mentions)
        rollup[1] += 1
        rollup[2] += repost
        for category, keys in by_category.items():
            rollup = self.rollups[(b, Kind.CATEGORY, category)]
            rollup[0] += category_mentions[category]
            rollup[1] += 1
            rollup[2] += repost
            if len(keys) > 1:
                for a, z in combinations(sorted(keys), 2):
                    self.pairs[self._pair_code(b, category, a, z)] += 1
        if len(first_category) > 1:
            for a, z in combinations(sorted(first_category), 2):
                self.pairs[self._pair_code(b, None, a, z)] += 1

    def cover(self, gold: bool, posted_at, platform: str, repost: bool) -> None:
        rollup = self.rollups[(self.base(gold, posted_at, platform), Kind.COVERED, "")]
        rollup[2 if repost else 1] += 1

    def rows(self):
        bases = {index: base for base, index in self.bases.items()}
        for (b, category, key), (m, p, pf, r, rf) in self.cells.items():
            gold, day, platform = bases[b]
            yield self._cell("day", gold, day, platform, Kind.BRAND, category, key, m, p, pf, r, rf)
        for (b, kind, category), (m, p, r) in self.rollups.items():
            gold, day, platform = bases[b]
            yield self._cell("day", gold, day, platform, kind, category, "", m, p, 0, r, 0)

    def _cell(self, grain, gold, day, platform, kind, category, key, m, p, pf, r, rf) -> CubeCell:
        return CubeCell(stream=self.stream, gold=gold, grain=grain, day=day, platform=platform, kind=kind,
                        category=category, key=key, mentions=m, posts=p, posts_first=pf, reposts=r, reposts_first=rf,
                        week=bucket_start(day, "week") if day and grain == "day" else None,
                        month=bucket_start(day, "month") if day and grain == "day" else None)

    def pair_rows(self):
        bases = {index: base for base, index in self.bases.items()}
        keys = {i: key for key, i in self.keys.items()}
        categories = {i: category for category, i in self.categories.items()}
        mask = (1 << _KEY_BITS) - 1
        while self.pairs:  # emptied as written: the counts are the largest thing the build holds
            code, n = self.pairs.popitem()
            iz, ia = code & mask, (code >> _KEY_BITS) & mask
            c, b = (code >> 2 * _KEY_BITS) & ((1 << _CATEGORY_BITS) - 1), code >> (2 * _KEY_BITS + _CATEGORY_BITS)
            gold, day, platform = bases[b]
            yield CubePair(stream=self.stream, gold=gold, grain="day", day=day, platform=platform,
                           category=categories[c], key_a=keys[ia], key_b=keys[iz], posts=n)

    def label_rows(self):
        for (gold, key), (post_id, label) in self.labels.items():
            if not Labels.linked(key):
                yield CubeLabel(stream=self.stream, gold=gold, key=key, first_post_id=post_id, label=label)


def _count_stream(stream: str, gold_ids: set[int]) -> _StreamCounts:
    counts = _StreamCounts(stream)
    is_gold = stream == GOLD_STREAM
    for post in MentionStream(_stream_filters(stream)).posts():
        counts.feed(post, is_gold or post.post_id in gold_ids)
    if is_gold:
        covered = Post.objects.filter(Exists(Annotation.objects.filter(post_id=OuterRef("pk"), is_gold=True)))
    else:
        covered = Post.objects.filter(Exists(Prediction.objects.filter(
            post_id=OuterRef("pk"), source=STUDENT_SOURCE, model_version=stream, status=Prediction.Status.OK)))
    for post_id, platform, posted_at in covered.values_list("id", "platform", "posted_at").iterator(chunk_size=BATCH):
        counts.cover(is_gold or post_id in gold_ids, posted_at, platform, repost=False)
    for post_id, platform, posted_at in (Repost.objects.filter(post__in=covered)
                                         .values_list("post_id", "platform", "posted_at").iterator(chunk_size=BATCH)):
        counts.cover(is_gold or post_id in gold_ids, posted_at, platform, repost=True)
    return counts


def _coarser_rows(stream: str) -> tuple[int, int]:
    """Week and month cells and all-days pairs, summed from the stream's day rows by the database."""
    from django.db import connection

    q = connection.ops.quote_name
    cell, pair = q(CubeCell._meta.db_table), q(CubePair._meta.db_table)
    counts = ", ".join(f"SUM({q(c)})" for c in ("mentions", "posts", "posts_first", "reposts", "reposts_first"))
    columns = "stream, gold, kind, grain, day, platform, category, " + q("key")
    added = 0
    with connection.cursor() as cursor:
        for grain in ("week", "month"):
            cursor.execute(
                f"INSERT INTO {cell} ({columns}, mentions, posts, posts_first, reposts, reposts_first) "
                f"SELECT stream, gold, kind, %s, {grain}, platform, category, {q('key')}, {counts} FROM {cell} "
                f"WHERE stream = %s AND grain = 'day' AND kind <> %s "
                f"GROUP BY stream, gold, kind, {grain}, platform, category, {q('key')}",
                [grain, stream, int(Kind.COVERED)])
            added += cursor.rowcount
        cursor.execute(
            f"INSERT INTO {pair} (stream, gold, grain, day, platform, category, key_a, key_b, posts) "
            f"SELECT stream, gold, 'all', NULL, platform, category, key_a, key_b, SUM(posts) FROM {pair} "
            f"WHERE stream = %s AND grain = 'day' GROUP BY stream, gold, platform, category, key_a, key_b",
            [stream])
        return added, cursor.rowcount


def _bulk(model, rows) -> int:
    batch, n = [], 0
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            model.objects.bulk_create(batch)
            n += len(batch)
            batch = []
    if batch:
        model.objects.bulk_create(batch)
        n += len(batch)
    return n


def cube_refresh(*, force: bool = False) -> CubeState:
    """Rebuild the cube if the data changed since it was built. One refresh at a time (the state row is
    locked on PostgreSQL); readers keep seeing the previous cube until the new one is committed."""
    CubeState.objects.get_or_create(pk=1)
    with transaction.atomic():
        state = CubeState.objects.select_for_update().get(pk=1)
        fingerprint = cube_fingerprint()  # before reading: a change made during the pass shows as stale
        if state.fingerprint == fingerprint and not force:
            return state
        started = time.perf_counter()
        gold_ids = set(Annotation.objects.filter(is_gold=True).values_list("post_id", flat=True))
        for model in (CubeCell, CubePair, CubeLabel):
            model.objects.all().delete()
        cells = pairs = 0
        for stream in cube_streams():
            counts = _count_stream(stream, gold_ids)
            cells += _bulk(CubeCell, counts.rows())
            pairs += _bulk(CubePair, counts.pair_rows())
            _bulk(CubeLabel, counts.label_rows())
            del counts
            more_cells, more_pairs = _coarser_rows(stream)
            cells, pairs = cells + more_cells, pairs + more_pairs
        state.fingerprint, state.built_at = fingerprint, timezone.now()
        state.seconds, state.cells, state.pairs = round(time.perf_counter() - started, 2), cells, pairs
        state.save()
    return state


def cube_fresh() -> tuple[CubeState | None, bool, str]:
    """The cube to answer from, whether it holds the current data, and the data's fingerprint; the cube
    is refreshed first when that is quick (a small database) and a refresh is queued when it is not."""
    state = CubeState.objects.filter(pk=1, built_at__isnull=False).first()
    data = data_fingerprint()
    fingerprint = json.dumps(data, default=str, sort_keys=True)
    if state is not None and state.fingerprint == fingerprint:
        return state, True, fingerprint
    if data["spans"]["n"] + data["predictions"]["n"] <= settings.REPORTS_CUBE_INLINE_ROWS:
        state = cube_refresh()
        return state, True, state.fingerprint
    if cache.add("reports:cube:queued", fingerprint, timeout=settings.REPORTS_CUBE_SECONDS):
        from reports.tasks import cube_refresh_task

        cube_refresh_task.delay()
    return state, False, fingerprint


# --- the page ----------------------------------------------------------------------------------

def _streams_q(filters: ReportFilters) -> Q:
    """The streams MentionStream merges for these filters: gold, and the generation's predictions (of the
    posts without gold when gold is read too)."""
    q = Q(pk__in=[])
    if filters.uses_gold:
        q |= Q(stream=GOLD_STREAM)
    if filters.model_version:
        q |= Q(stream=filters.model_version, **({"gold": False} if filters.uses_gold else {}))
    return q


def _where(filters: ReportFilters, grain: str = "day") -> Q:
    q = _streams_q(filters) & Q(grain=grain)
    if filters.platform:
        q &= Q(platform=filters.platform)
    if filters.date_from is not None:
        q &= Q(day__gte=filters.date_from)
    if filters.date_to is not None:
        q &= Q(day__lte=filters.date_to)
    return q


def _labels(filters: ReportFilters) -> Labels:
    labels = Labels()
    labels.names.update({f"b{pk}": name for pk, name in Brand.objects.values_list("id", "canonical_name")})
    for key, label in (CubeLabel.objects.filter(_streams_q(filters)).order_by("key", "first_post_id")
                       .values_list("key", "label")):
        labels.names.setdefault(key, label)
    return labels


def _emerging(filters: ReportFilters, labels: Labels) -> Emerging:
    covered = CubeCell.objects.filter(_where(filters), kind=Kind.COVERED, day__isnull=False)

    def covered_days(_filters: ReportFilters) -> tuple:
        bounds = covered.filter(posts__gt=0).aggregate(first=Min("day"), last=Max("day"))
        return bounds["first"], bounds["last"]

    emerging = Emerging(filters, labels, bounds=covered_days)
    period = emerging.period
    if period is None:
        return emerging
    first, second = Q(day__gte=period.start, day__lt=period.middle), Q(day__gte=period.middle, day__lte=period.end)
    volume = F("posts") + F("reposts")
    c = covered.aggregate(first=Sum(volume, filter=first), second=Sum(volume, filter=second))
    emerging.covered = (c["first"] or 0, c["second"] or 0)
    cells = CubeCell.objects.filter(_where(filters), kind=Kind.BRAND, day__gte=period.start, day__lte=period.end)
    if filters.category:
        cells = cells.filter(category=filters.category)
    for key, category, m1, m2 in (cells.values("key", "category")
                                  .annotate(m1=Sum("mentions", filter=first), m2=Sum("mentions", filter=second))
                                  .values_list("key", "category", "m1", "m2")):
        halves = emerging.halves[key]
        halves[0] += m1 or 0
        halves[1] += m2 or 0
        emerging.categories[key][category] += (m1 or 0) + (m2 or 0)
    return emerging


def _grain(filters: ReportFilters) -> str:
    """The coarsest rows that answer the filters: whole weeks or months unless a date cuts one."""
    bucket = filters.bucket
    if filters.date_from is not None and bucket_start(filters.date_from, bucket) != filters.date_from:
        return "day"
    if filters.date_to is not None and (
            bucket_next(bucket_start(filters.date_to, bucket), bucket) != filters.date_to + timedelta(days=1)):
        return "day"
    return bucket


def _co_mentions(filters: ReportFilters, labels: Labels, posts_with: Counter, wanted: str | None) -> CoMentions:
    """CoMentions holding the pairs that can make the page's top rows (with every pair tied with the last)."""
    pairs = CubePair.objects.filter(_where(filters, "day" if filters.has_date_range else "all"))
    pairs = pairs.filter(category=filters.category) if filters.category else pairs.filter(category__isnull=True)
    if wanted is not None:
        pairs = pairs.filter(Q(key_a=wanted) | Q(key_b=wanted))
    grouped = pairs.values("key_a", "key_b").annotate(n=Sum("posts")).order_by("-n")
    top = list(grouped.values_list("key_a", "key_b", "n")[:TABLE_ROWS * 8])
    if len(top) == TABLE_ROWS * 8 and top[TABLE_ROWS - 1][2] == top[-1][2]:  # a tie runs past what was read
        top = list(grouped.filter(n__gte=top[TABLE_ROWS - 1][2]).values_list("key_a", "key_b", "n"))
    co = CoMentions(filters, labels)
    co.posts_with = posts_with
    co.pairs.update({(a, b): n for a, b, n in top})
    return co


def _orphan_texts(filters: ReportFilters, wanted: str | None) -> int:
    """Texts counted only through a repost: the post itself is outside the filters."""
    if not (filters.platform or filters.has_date_range):
        return 0
    candidates = sorted({post_id for post_id, platform, posted_at in Repost.objects.filter(filters.post_q())
                         .values_list("post_id", "post__platform", "post__posted_at")
                         if not filters.keeps(platform, posted_at)})
    anywhere = replace(filters, date_from=None, date_to=None, platform="")
    n = 0
    for i in range(0, len(candidates), 500):
        for post in MentionStream(anywhere, reposts=False, post_ids=candidates[i:i + 500]).posts():
            n += wanted is None or any(m.key == wanted for m in post.mentions)
    return n


def cube_page_data(filters: ReportFilters, state: CubeState) -> dict:
    labels = _labels(filters)
    wanted = f"b{filters.brand_id}" if filters.brand_id is not None else None
    by_category = bool(filters.category)
    grain = _grain(filters)
    cells = CubeCell.objects.filter(_where(filters, grain), kind=Kind.BRAND)
    if by_category:
        cells = cells.filter(category=filters.category)
    bucket = filters.bucket
    column = bucket if grain == "day" else "day"  # day rows carry their week and month
    mentions, posts_with = Counter(), Counter()
    cell_mentions, cell_posts = Counter(), Counter()  # (bucket, category, key), dated only
    brand_totals = {"mentions": 0, "posts": 0, "reposts": 0, "undated_posts": 0}
    all_mentions = 0
    for when, category, key, m, p, pf, r, rf in (
            cells.values(column, "category", "key")
            .annotate(m=Sum("mentions"), p=Sum("posts"), pf=Sum("posts_first"), r=Sum("reposts"),
                      rf=Sum("reposts_first"))
            .values_list(column, "category", "key", "m", "p", "pf", "r", "rf")):
        posts, reposts = (p, r) if by_category else (pf, rf)
        mentions[key] += m
        posts_with[key] += posts
        all_mentions += m
        if when is not None:
            cell_mentions[(when, category, key)] += m
            cell_posts[(when, category, key)] += p
        if key == wanted:
            brand_totals["mentions"] += m
            brand_totals["posts"] += posts
            brand_totals["reposts"] += reposts
            brand_totals["undated_posts"] += posts if when is None else 0

    if wanted is None:
        rollups = CubeCell.objects.filter(_where(filters, grain), kind=Kind.CATEGORY if by_category else Kind.POSTS)
        if by_category:
            rollups = rollups.filter(category=filters.category)
        t = rollups.aggregate(p=Sum("posts"), r=Sum("reposts"), undated=Sum("posts", filter=Q(day__isnull=True)))
        totals = {"posts": t["p"] or 0, "mentions": all_mentions, "undated_posts": t["undated"] or 0,
                  "reposts": t["r"] or 0}
    else:
        totals = dict(brand_totals)
    totals["all_mentions"] = all_mentions
    totals["unique_texts"] = totals["posts"] - totals["reposts"] + _orphan_texts(filters, wanted)

    summary = BrandSummary(filters, labels)
    summary.mentions, summary.posts = cell_mentions, cell_posts
    for (when, category, _key), m in cell_mentions.items():
        summary.category_totals[(when, category)] += m
    summary.last_bucket = max((when for when, _, _ in cell_mentions), default=None)
    return page_assembled(
        filters, labels, totals=totals, mentions=mentions, summary=summary,
        co=_co_mentions(filters, labels, posts_with, wanted), emerging=_emerging(filters, labels),
        computed_at=state.built_at,
    )


def reports_page_data_cached(filters: ReportFilters) -> dict:
    """The page's figures: from the cube when it is on (REPORTS_CUBE), else one pass over the mentions;
    either way kept per filter set and data state for REPORTS_PAGE_CACHE_SECONDS."""
    if settings.REPORTS_CUBE:
        state, fresh, version = cube_fresh()
    else:
        state, fresh, version = None, False, cube_fingerprint()
    if state is None:
        compute = lambda: reports_page_data(filters)  # noqa: E731
    else:
        compute, version = (lambda: cube_page_data(filters, state)), state.fingerprint
    seconds = settings.REPORTS_PAGE_CACHE_SECONDS
    if seconds <= 0:
        data = compute()
    else:
        key = "reports:page:" + hashlib.sha256(json.dumps(
            [filters.as_query(), filters.model_version, version, state is None], sort_keys=True).encode()).hexdigest()
        data = cache.get(key)
        if data is None:
            data = compute()
            cache.set(key, data, seconds)
    return data | {"stale": state is not None and not fresh}
