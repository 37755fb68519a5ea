"""The four reports, each a one-pass aggregator over the mention stream.

Memory is bounded by the size of the answer (brands x buckets, brand pairs), never by the number of
mentions. Definitions (also shown on the reports page):

- brand summary: per time bucket, mention category and brand — mentions, posts mentioning it, share of
  voice = its mentions / all mentions of that category in that bucket, and the change against the
  previous calendar bucket. A row also appears for the bucket after the last one with mentions, so a
  drop to zero is visible.
- co-mentions: unordered brand pairs mentioned in the same post; a post counts once per pair.
  jaccard = posts with both / posts with either.
- emerging: the period (the date filter, else the first to last dated post the source covers) is cut
  into two halves of equal days. rate = mentions per 1,000 covered posts of the half (posts the source
  looked at, with or without brands). growth = smoothed rate of the second half / smoothed rate of the
  first, where a half's smoothed rate is (m + a * r) / (P + a): its own mentions m over its covered posts
  P, plus a = EMERGING_PRIOR_POSTS pseudo-posts at the brand's rate r over the whole period. A half with
  few posts thus says little (its rate stays near r, growth near 1), and 0 -> n mentions is a finite
  number rather than infinite. Brands with fewer than EMERGING_MIN_MENTIONS mentions are left out.

Posts without posted_at count in the mentions export and co-mentions when no date range is set, and
never in the time-bucketed reports (brand summary, emerging, share of voice).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from itertools import combinations
from typing import Callable, Iterator

from django.db.models import Count, Max, Min, Q

from annotation.models import Repost
from reports.filters import ReportFilters
from reports.mentions import (
    Mention, MentionStream, PostMentions, bucket_next, bucket_previous, bucket_start, covered_posts,
)

EMERGING_MIN_MENTIONS = 3
EMERGING_PRIOR_POSTS = 50


class Labels:
    """Display names of brand keys; an unlinked mention keeps the first spelling seen."""

    def __init__(self):
        self.names: dict[str, str] = {}

    def add(self, mention: Mention) -> str:
        key = mention.key
        if key not in self.names:
            self.names[key] = mention.brand
        return key

    def __getitem__(self, key: str) -> str:
        return self.names[key]

    @staticmethod
    def linked(key: str) -> bool:
        return key.startswith("b")


def main_category(counts: Counter) -> str:
    """The category with the most mentions; a tie goes to the first slug."""
    return min(counts.items(), key=lambda item: (-item[1], item[0]))[0]


def _ratio(a: float, b: float, digits: int = 4) -> float | None:
    return round(a / b, digits) if b else None


# --- mentions ---------------------------------------------------------------------------------

MENTIONS_HEADER = ["post_id", "platform", "posted_at", "brand", "brand_linked", "category", "mention_text",
                   "source", "model_version", "confidence", "repost_id"]


def mentions_rows(filters: ReportFilters) -> Iterator[list]:
    brand_id = filters.brand_id
    for post in MentionStream(filters).posts():
        posted_at = post.posted_at.isoformat() if post.posted_at else ""
        for m in post.mentions:
            if brand_id is not None and m.brand_id != brand_id:
                continue
            yield [post.post_id, post.platform, posted_at, m.brand, "yes" if m.brand_id is not None else "no",
                   m.category, m.text, m.source, m.model_version,
                   round(m.confidence, 4) if m.confidence is not None else "", post.repost]


# --- brand summary ----------------------------------------------------------------------------

BRAND_SUMMARY_HEADER = ["bucket", "category", "brand", "brand_linked", "mentions", "posts", "category_mentions",
                        "share_of_voice", "previous_mentions", "change", "change_pct"]


@dataclass
class SummaryRow:
    bucket: date
    category: str
    key: str
    brand: str
    mentions: int
    posts: int
    category_mentions: int
    share_of_voice: float | None
    previous_mentions: int
    change: int
    change_pct: float | None

    def as_list(self) -> list:
        return [self.bucket.isoformat(), self.category, self.brand, "yes" if Labels.linked(self.key) else "no",
                self.mentions, self.posts, self.category_mentions,
                self.share_of_voice if self.share_of_voice is not None else "", self.previous_mentions,
                self.change, self.change_pct if self.change_pct is not None else ""]


class BrandSummary:
    def __init__(self, filters: ReportFilters, labels: Labels | None = None):
        self.filters = filters
        self.labels = labels or Labels()
        self.mentions: Counter = Counter()  # (bucket, category, key)
        self.posts: Counter = Counter()  # (bucket, category, key)
        self.category_totals: Counter = Counter()  # (bucket, category)
        self.last_bucket: date | None = None

    def feed(self, post: PostMentions) -> None:
        if post.posted_at is None:
            return
        bucket = bucket_start(post.posted_at, self.filters.bucket)
        if self.last_bucket is None or bucket > self.last_bucket:
            self.last_bucket = bucket
        seen = set()
        for m in post.mentions:
            key = self.labels.add(m)
            cell = (bucket, m.category, key)
            self.mentions[cell] += 1
            self.category_totals[(bucket, m.category)] += 1
            if cell not in seen:
                seen.add(cell)
                self.posts[cell] += 1

    def rows(self) -> list[SummaryRow]:
        bucket_kind = self.filters.bucket
        last = self.last_bucket
        if self.filters.date_to is not None:
            last = bucket_start(self.filters.date_to, bucket_kind)
        wanted = f"b{self.filters.brand_id}" if self.filters.brand_id is not None else None
        cells = set(self.mentions)
        for bucket, category, key in list(cells):
            following = bucket_next(bucket, bucket_kind)
            if last is not None and following <= last:
                cells.add((following, category, key))
        out = []
        for bucket, category, key in cells:
            if wanted is not None and key != wanted:
                continue
            mentions = self.mentions.get((bucket, category, key), 0)
            previous = self.mentions.get((bucket_previous(bucket, bucket_kind), category, key), 0)
            total = self.category_totals.get((bucket, category), 0)
            out.append(SummaryRow(
                bucket=bucket, category=category, key=key, brand=self.labels[key], mentions=mentions,
                posts=self.posts.get((bucket, category, key), 0), category_mentions=total,
                share_of_voice=_ratio(mentions, total) if total else 0.0, previous_mentions=previous,
                change=mentions - previous,
                change_pct=round(100 * (mentions - previous) / previous, 1) if previous else None,
            ))
        out.sort(key=lambda r: (r.bucket, r.category, -r.mentions, r.brand.casefold(), r.key))
        return out


# --- co-mentions ------------------------------------------------------------------------------

CO_MENTIONS_HEADER = ["brand_a", "brand_b", "posts_together", "posts_a", "posts_b", "jaccard"]


@dataclass
class PairRow:
    brand_a: str
    brand_b: str
    posts_together: int
    posts_a: int
    posts_b: int
    jaccard: float | None

    def as_list(self) -> list:
        return [self.brand_a, self.brand_b, self.posts_together, self.posts_a, self.posts_b, self.jaccard]


class CoMentions:
    def __init__(self, filters: ReportFilters, labels: Labels | None = None):
        self.filters = filters
        self.labels = labels or Labels()
        self.posts_with: Counter = Counter()
        self.pairs: Counter = Counter()

    def feed(self, post: PostMentions) -> None:
        keys = {self.labels.add(m) for m in post.mentions}
        for key in keys:
            self.posts_with[key] += 1
        if len(keys) > 1:
            for pair in combinations(sorted(keys), 2):
                self.pairs[pair] += 1

    def rows(self) -> list[PairRow]:
        wanted = f"b{self.filters.brand_id}" if self.filters.brand_id is not None else None
        out = []
        for (a, b), together in self.pairs.items():
            if wanted is not None and wanted not in (a, b):
                continue
            if wanted == b or (wanted is None and self.labels[a].casefold() > self.labels[b].casefold()):
                a, b = b, a  # the filtered brand first; otherwise alphabetical
            pa, pb = self.posts_with[a], self.posts_with[b]
            out.append(PairRow(self.labels[a], self.labels[b], together, pa, pb, _ratio(together, pa + pb - together)))
        out.sort(key=lambda r: (-r.posts_together, -(r.jaccard or 0), r.brand_a.casefold(), r.brand_b.casefold()))
        return out


# --- emerging ---------------------------------------------------------------------------------

EMERGING_HEADER = ["brand", "brand_linked", "category", "mentions_first_half", "mentions_second_half",
                   "posts_first_half", "posts_second_half", "rate_first_half", "rate_second_half", "growth",
                   "first_half_start", "second_half_start", "period_end"]


@dataclass
class EmergingRow:
    key: str
    brand: str
    category: str
    m1: int
    m2: int
    p1: int
    p2: int
    rate1: float
    rate2: float
    growth: float

    @property
    def linked(self) -> bool:
        return Labels.linked(self.key)

    def as_list(self, period: "Period") -> list:
        return [self.brand, "yes" if Labels.linked(self.key) else "no", self.category, self.m1, self.m2, self.p1,
                self.p2, self.rate1, self.rate2, self.growth, period.start.isoformat(), period.middle.isoformat(),
                period.end.isoformat()]


@dataclass(frozen=True)
class Period:
    start: date  # first day of the first half
    middle: date  # first day of the second half
    end: date  # last day, inclusive


def covered_days(filters: ReportFilters) -> tuple[date | None, date | None]:
    """The first and last day with a dated post the source covers (None, None: there is none)."""
    bounds = covered_posts(filters, dated_only=True).aggregate(first=Min("posted_at"), last=Max("posted_at"))
    if bounds["first"] is None:
        return None, None
    return bucket_start(bounds["first"], "day"), bucket_start(bounds["last"], "day")


def emerging_period(filters: ReportFilters, bounds: Callable[[ReportFilters], tuple] = covered_days) -> Period | None:
    start, end = filters.date_from, filters.date_to
    if start is None or end is None:
        first, last = bounds(filters)
        if first is None:
            return None
        start, end = start or first, end or last
    days = (end - start).days + 1
    if days < 2:
        return None  # nothing to compare
    return Period(start, start + timedelta(days=days // 2), end)


class Emerging:
    def __init__(self, filters: ReportFilters, labels: Labels | None = None, period: Period | None = None,
                 min_mentions: int = EMERGING_MIN_MENTIONS, prior_posts: float = EMERGING_PRIOR_POSTS,
                 covered: tuple[int, int] | None = None, bounds: Callable[[ReportFilters], tuple] | None = None):
        self.filters = filters
        self.covered = covered  # the covered posts of each half when already counted (the cube)
        self.labels = labels or Labels()
        self.period = period if period is not None else emerging_period(filters, bounds or covered_days)
        self.min_mentions = min_mentions
        self.prior_posts = prior_posts
        self.halves: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self.categories: dict[str, Counter] = defaultdict(Counter)

    def feed(self, post: PostMentions) -> None:
        if post.posted_at is None or self.period is None:
            return
        day = bucket_start(post.posted_at, "day")
        if day < self.period.start or day > self.period.end:
            return
        half = 0 if day < self.period.middle else 1
        for m in post.mentions:
            key = self.labels.add(m)
            self.halves[key][half] += 1
            self.categories[key][m.category] += 1

    def covered_counts(self) -> tuple[int, int]:
        if self.period is None:
            return 0, 0
        if self.covered is not None:
            return self.covered
        start, middle, end = (datetime.combine(day, time.min, tzinfo=dt_timezone.utc) for day in (
            self.period.start, self.period.middle, self.period.end + timedelta(days=1)))
        halves = {"first": Count("id", filter=Q(posted_at__gte=start, posted_at__lt=middle)),
                  "second": Count("id", filter=Q(posted_at__gte=middle, posted_at__lt=end))}
        # One scan for both halves: the covered-posts filter is the expensive part.
        counts = covered_posts(self.filters, dated_only=True).aggregate(**halves)
        # Reposts are volume too (the stream feeds their mentions): where and when they were posted, of
        # a text the source covers wherever the text itself was posted.
        anywhere = replace(self.filters, date_from=None, date_to=None, platform="")
        copies = Repost.objects.filter(self.filters.post_q(dated_only=True),
                                       post__in=covered_posts(anywhere)).aggregate(**halves)
        return counts["first"] + copies["first"], counts["second"] + copies["second"]

    def growth(self, m1: int, m2: int, p1: int, p2: int) -> float:
        prior = self.prior_posts * (m1 + m2) / max(p1 + p2, 1)  # pseudo-mentions at the period's rate
        return ((m2 + prior) / (p2 + self.prior_posts)) / ((m1 + prior) / (p1 + self.prior_posts))

    def rows(self) -> list[EmergingRow]:
        if self.period is None:
            return []
        p1, p2 = self.covered_counts()
        wanted = f"b{self.filters.brand_id}" if self.filters.brand_id is not None else None
        out = []
        for key, (m1, m2) in self.halves.items():
            if m1 + m2 < self.min_mentions or (wanted is not None and key != wanted):
                continue
            growth = self.growth(m1, m2, p1, p2)
            out.append(EmergingRow(
                key=key, brand=self.labels[key], category=main_category(self.categories[key]), m1=m1, m2=m2,
                p1=p1, p2=p2, rate1=round(1000 * m1 / p1, 2) if p1 else 0.0,
                rate2=round(1000 * m2 / p2, 2) if p2 else 0.0, growth=round(growth, 3),
            ))
        out.sort(key=lambda r: (-r.growth, -r.m2, r.brand.casefold(), r.key))
        return out


# --- one pass, many reports -------------------------------------------------------------------

def run_pass(filters: ReportFilters, aggregators: list, *, dated_only: bool = False) -> None:
    for post in MentionStream(filters, dated_only=dated_only).posts():
        for aggregator in aggregators:
            aggregator.feed(post)


def report_table(kind: str, filters: ReportFilters) -> tuple[list[str], Iterator[list]]:
    """Header and lazy rows of a report: nothing is read until the first row is asked for, so a
    download starts (header sent) before the pass over the mentions begins."""
    if kind == "mentions":
        return MENTIONS_HEADER, mentions_rows(filters)
    if kind == "brand_summary":
        def rows():
            summary = BrandSummary(filters)
            run_pass(filters, [summary], dated_only=True)
            for row in summary.rows():
                yield row.as_list()
        return BRAND_SUMMARY_HEADER, rows()
    if kind == "co_mentions":
        def rows():
            co = CoMentions(filters)
            run_pass(filters, [co])
            for row in co.rows():
                yield row.as_list()
        return CO_MENTIONS_HEADER, rows()
    if kind == "emerging":
        def rows():
            emerging = Emerging(filters)
            if emerging.period is None:
                return
            run_pass(filters, [emerging], dated_only=True)
            for row in emerging.rows():
                yield row.as_list(emerging.period)
        return EMERGING_HEADER, rows()
    raise ValueError(f"unknown report kind {kind!r}")
