"""What the reports page shows, from a single pass over the mentions (reports/cube.py gives the
same figures from materialised aggregates)."""

from __future__ import annotations

from collections import Counter

from django.conf import settings
from django.db.models import Count, Max
from django.utils import timezone

from annotation.models import Annotation, Post, Prediction, Repost, Span
from kb.models import Brand, Category
from reports.aggregates import BrandSummary, CoMentions, Emerging, Labels
from reports.charts import bar_chart_svg, share_of_voice_svg
from reports.filters import ReportFilters
from reports.mentions import MentionStream, bucket_range

CHART_BRANDS = 7
TABLE_ROWS = 15
BAR_PAIRS = 10


def data_fingerprint() -> dict:
    """Changes whenever posts, gold annotations, spans, predictions or the KB change (cheap aggregates)."""
    return {
        "posts": Post.objects.aggregate(n=Count("id"), last=Max("id")),
        "gold": Annotation.objects.filter(is_gold=True).aggregate(n=Count("id"), changed=Max("updated_at")),
        "spans": Span.objects.aggregate(n=Count("id"), last=Max("id")),
        "predictions": Prediction.objects.aggregate(n=Count("id"), last=Max("id")),
        "brands": Brand.objects.aggregate(n=Count("id"), changed=Max("updated_at")),
        "reposts": Repost.objects.aggregate(n=Count("id"), last=Max("id")),
        "categories": Category.objects.aggregate(n=Count("id"), last=Max("id")),
    }


def reports_page_data(filters: ReportFilters) -> dict:
    labels = Labels()
    summary, co, emerging = BrandSummary(filters, labels), CoMentions(filters, labels), Emerging(filters, labels)
    mentions = Counter()
    wanted = f"b{filters.brand_id}" if filters.brand_id is not None else None
    # With a brand filter the totals are that brand's: its mentions, the posts naming it. Shares stay
    # shares of every mention (all_mentions).
    totals = {"posts": 0, "mentions": 0, "undated_posts": 0, "all_mentions": 0, "reposts": 0}
    texts = set()
    for post in MentionStream(filters).posts():
        keys = [labels.add(m) for m in post.mentions]
        mentions.update(keys)
        totals["all_mentions"] += len(keys)
        counted = len(keys) if wanted is None else keys.count(wanted)
        if counted or (wanted is None):
            totals["posts"] += 1
            totals["mentions"] += counted
            totals["undated_posts"] += post.posted_at is None
            totals["reposts"] += bool(post.repost)
            texts.add(post.post_id)
        summary.feed(post)
        co.feed(post)
        emerging.feed(post)
    totals["unique_texts"] = len(texts)

    return page_assembled(filters, labels, totals=totals, mentions=mentions, summary=summary, co=co,
                          emerging=emerging, computed_at=timezone.now())


def page_assembled(filters: ReportFilters, labels: Labels, *, totals: dict, mentions: Counter, summary: BrandSummary,
                   co: CoMentions, emerging: Emerging, computed_at) -> dict:
    """The page's figures from its aggregators, however they were filled (one pass over the mentions, or
    the cube). mentions: per brand key; co.posts_with: posts per brand key."""
    wanted = f"b{filters.brand_id}" if filters.brand_id is not None else None
    top_brands = [
        {"brand": labels[key], "linked": Labels.linked(key), "mentions": n, "posts": co.posts_with[key],
         "share": n / totals["all_mentions"] if totals["all_mentions"] else 0}
        for key, n in top_order(mentions, labels)
        if wanted is None or key == wanted
    ][:TABLE_ROWS]
    last = summary.last_bucket
    latest = [r for r in summary.rows() if r.bucket == last] if last else []
    latest.sort(key=lambda r: (-r.mentions, r.brand.casefold(), r.category, r.key))
    pairs = co.rows()
    return {
        "computed_at": computed_at,
        "totals": totals,
        "top_brands": top_brands,
        "latest_bucket": last,
        "latest_rows": latest[:TABLE_ROWS],
        **share_of_voice_chart(filters, summary.mentions, labels, wanted),
        "pairs": pairs[:TABLE_ROWS],
        "pairs_chart": bar_chart_svg([(f"{p.brand_a} + {p.brand_b}", p.posts_together) for p in pairs[:BAR_PAIRS]],
                                     title="Brand pairs mentioned in the same posts"),
        "emerging": emerging.rows()[:TABLE_ROWS],
        "period": emerging.period,
        "min_mentions": emerging.min_mentions,
    }


def top_order(mentions: Counter, labels: Labels) -> list[tuple[str, int]]:
    """Most mentioned first; ties by name, then key (the same order however the counts were made)."""
    return sorted(mentions.items(), key=lambda item: (-item[1], labels[item[0]].casefold(), item[0]))


def share_of_voice_chart(filters: ReportFilters, cell_mentions: Counter, labels: Labels, wanted: str | None):
    """cell_mentions: (bucket, category, key) -> mentions, dated mentions only."""
    per_bucket: Counter = Counter()  # (bucket, key), categories pooled
    bucket_totals: Counter = Counter()
    for (bucket, _category, key), n in cell_mentions.items():
        per_bucket[(bucket, key)] += n
        bucket_totals[bucket] += n
    scope = f"in {filters.category}" if filters.category else "across categories"
    title = f"Share of voice per {filters.bucket} ({scope})"
    minimum = max(1, settings.REPORTS_SOV_MIN_MENTIONS)
    out = {"sov_min_mentions": minimum, "sov_left_out": 0}
    if not bucket_totals:
        return {**out, "sov_chart": share_of_voice_svg([], [], bucket=filters.bucket, title=title)}
    every = bucket_range(min(bucket_totals), max(bucket_totals), filters.bucket)
    buckets = [b for b in every if bucket_totals[b] >= minimum]
    out["sov_left_out"] = sum(1 for b in every if 0 < bucket_totals[b] < minimum)
    if not buckets:
        empty = f"Every {filters.bucket} here has fewer than {minimum} mentions: too few for shares."
        return {**out, "sov_chart": share_of_voice_svg([], [], bucket=filters.bucket, title=title, empty=empty)}
    shown = set(buckets)
    brand_totals: Counter = Counter()  # the top brands of what the chart shows
    for (b, key), n in per_bucket.items():
        if b in shown:
            brand_totals[key] += n
    keys = [wanted] if wanted else [k for k, _ in top_order(brand_totals, labels)[:CHART_BRANDS]]
    grand_total = sum(bucket_totals[b] for b in buckets)
    series = []
    for key in keys:
        series.append((labels[key] if key in labels.names else filters.brand_name,
                       [per_bucket[(b, key)] / bucket_totals[b] if bucket_totals[b] else 0 for b in buckets],
                       brand_totals[key] / grand_total))
    other = [
        (bucket_totals[b] - sum(per_bucket[(b, k)] for k in keys)) / bucket_totals[b] if bucket_totals[b] else 0
        for b in buckets
    ]
    if any(other):
        series.append(("Other", other, 1 - sum(s[2] for s in series)))
    return {**out, "sov_chart": share_of_voice_svg(buckets, series, bucket=filters.bucket, title=title)}
