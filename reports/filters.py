"""Report filters: parsed once from a query string or the command line, validated against the database.

A bad value raises ReportFilterError with one message per field, so a page or a CSV request can answer
400 with a sentence the analyst can act on, and the command can print it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from typing import Mapping

from django.db.models import Q

from annotation.models import Post, Prediction
from kb.models import Brand, Category

BUCKETS = ("day", "week", "month")
DEFAULT_BUCKET = "month"
KINDS = ("mentions", "brand_summary", "co_mentions", "emerging")

SOURCE_GOLD = "gold"
# Gold where a post has a gold annotation, else the promoted generation's predictions.
SOURCE_AUTO = "auto"
SOURCE_DEFAULT = SOURCE_AUTO
STUDENT_SOURCE = Prediction.Source.STUDENT
_GENERATION = re.compile(r"^(?:gen-)?(\d{1,6})$", re.IGNORECASE)


class ReportFilterError(ValueError):
    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))


@dataclass(frozen=True)
class ReportFilters:
    date_from: date | None = None
    date_to: date | None = None
    platform: str = ""
    category: str = ""  # slug
    brand_id: int | None = None
    brand_name: str = ""
    source: str = SOURCE_DEFAULT  # "gold" | "auto" | "gen-N"
    bucket: str = DEFAULT_BUCKET
    # The predictions the source reads (student model_version), "" when it reads gold only.
    model_version: str = ""

    @property
    def has_date_range(self) -> bool:
        return self.date_from is not None or self.date_to is not None

    @property
    def uses_gold(self) -> bool:
        return self.source in (SOURCE_GOLD, SOURCE_AUTO)

    @property
    def start(self) -> datetime | None:
        return datetime.combine(self.date_from, time.min, tzinfo=dt_timezone.utc) if self.date_from else None

    @property
    def end(self) -> datetime | None:
        """Exclusive: the day after date_to, so the 'to' day is included whole."""
        if self.date_to is None:
            return None
        return datetime.combine(self.date_to + timedelta(days=1), time.min, tzinfo=dt_timezone.utc)

    def post_q(self, prefix: str = "", *, dated_only: bool = False) -> Q:
        """Post-level conditions. Undated posts fall out as soon as a date bound is set."""
        q = Q()
        if self.platform:
            q &= Q(**{f"{prefix}platform": self.platform})
        if self.start is not None:
            q &= Q(**{f"{prefix}posted_at__gte": self.start})
        if self.end is not None:
            q &= Q(**{f"{prefix}posted_at__lt": self.end})
        if dated_only:
            q &= Q(**{f"{prefix}posted_at__isnull": False})
        return q

    def keeps(self, platform: str, posted_at, *, dated_only: bool = False) -> bool:
        """`post_q` on values already read (a post whose repost, not itself, matched)."""
        if self.platform and platform != self.platform:
            return False
        if posted_at is None:
            return not (dated_only or self.start is not None or self.end is not None)
        return (self.start is None or posted_at >= self.start) and (self.end is None or posted_at < self.end)

    def describe_source(self) -> str:
        if self.source == SOURCE_GOLD:
            return "gold annotations only"
        if self.source == SOURCE_AUTO:
            if self.model_version:
                return f"gold where present, else {self.model_version} (promoted) predictions"
            return "gold annotations (no generation is promoted yet)"
        return f"{self.model_version} predictions"

    def as_query(self) -> dict[str, str]:
        """The query-string form, for links that keep the filters (CSV downloads)."""
        out = {"source": self.source, "bucket": self.bucket}
        if self.date_from:
            out["date_from"] = self.date_from.isoformat()
        if self.date_to:
            out["date_to"] = self.date_to.isoformat()
        if self.platform:
            out["platform"] = self.platform
        if self.category:
            out["category"] = self.category
        if self.brand_name:
            out["brand"] = self.brand_name
        return out


def promoted_model_version() -> str:
    from modeling.models import ModelGeneration

    number = (
        ModelGeneration.objects.filter(status=ModelGeneration.Status.PROMOTED).values_list("number", flat=True).first()
    )
    return f"gen-{number}" if number is not None else ""


def platforms_known() -> list[str]:
    """Platforms of posts and of reposts (a text first posted on TikTok may be reposted on YouTube only)."""
    from annotation.models import Repost

    known = set(Post.objects.order_by().values_list("platform", flat=True).distinct())
    known |= set(Repost.objects.order_by().values_list("platform", flat=True).distinct())
    return sorted(p for p in known if p)


def generations_reportable() -> list[str]:
    """Generations offered on the page: those that got as far as predicting (newest first)."""
    from modeling.models import ModelGeneration

    statuses = (ModelGeneration.Status.READY, ModelGeneration.Status.PROMOTED, ModelGeneration.Status.RETIRED)
    return [f"gen-{n}" for n in ModelGeneration.objects.filter(status__in=statuses).values_list("number", flat=True)]


def generation_exists(model_version: str) -> bool:
    from modeling.models import ModelGeneration

    number = int(model_version.removeprefix("gen-"))
    return (ModelGeneration.objects.filter(number=number).exists()
            or Prediction.objects.filter(source=STUDENT_SOURCE, model_version=model_version).exists())


DATE_MIN, DATE_MAX = date(1990, 1, 1), date(2100, 12, 31)  # social posts; the bounds keep date arithmetic safe


def _parse_date(value: str, field: str, errors: dict) -> date | None:
    if not value:
        return None
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        errors[field] = f"{value!r} is not a date; use YYYY-MM-DD."
        return None
    if not DATE_MIN <= parsed <= DATE_MAX:
        errors[field] = f"{value} is outside {DATE_MIN.year}–{DATE_MAX.year}."
        return None
    return parsed


def report_filters_parse(data: Mapping[str, str | None]) -> ReportFilters:
    """Validate raw values (query string or command options); raise ReportFilterError listing every bad one."""

    def get(name: str) -> str:
        value = data.get(name)
        return str(value).strip() if value is not None else ""

    errors: dict[str, str] = {}
    date_from = _parse_date(get("date_from"), "date_from", errors)
    date_to = _parse_date(get("date_to"), "date_to", errors)
    if date_from and date_to and date_from > date_to:
        errors["date_to"] = f"'to' ({date_to}) is before 'from' ({date_from})."

    platform = get("platform")
    if platform and platform not in platforms_known():
        errors["platform"] = f"Unknown platform {platform!r}; known: {', '.join(platforms_known()) or 'none'}."

    category = get("category").lower()
    if category and not Category.objects.filter(slug=category).exists():
        slugs = ", ".join(Category.objects.values_list("slug", flat=True))
        errors["category"] = f"Unknown category {category!r}; use one of: {slugs}."

    brand_id, brand_name = None, get("brand")
    if brand_name:
        brand = (
            Brand.objects.filter(canonical_name__iexact=brand_name).first()
            or Brand.objects.filter(slug=brand_name.lower()).first()
        )
        if brand is None:
            errors["brand"] = f"No brand named {brand_name!r} in the knowledge base."
        else:
            brand_id, brand_name = brand.pk, brand.canonical_name

    bucket = get("bucket").lower() or DEFAULT_BUCKET
    if bucket not in BUCKETS:
        errors["bucket"] = f"Unknown time bucket {bucket!r}; use day, week or month."

    source = get("source").lower() or SOURCE_DEFAULT
    model_version = ""
    if source == SOURCE_AUTO:
        model_version = promoted_model_version()
    elif source != SOURCE_GOLD:
        match = _GENERATION.match(source)
        if match is None:
            errors["source"] = f"Unknown source {source!r}; use gold, auto or a generation like gen-3."
        else:
            source = model_version = f"gen-{int(match.group(1))}"
            if not generation_exists(model_version):
                errors["source"] = f"There is no generation {model_version}."

    if errors:
        raise ReportFilterError(errors)
    return ReportFilters(
        date_from=date_from, date_to=date_to, platform=platform, category=category, brand_id=brand_id,
        brand_name=brand_name, source=source, bucket=bucket, model_version=model_version,
    )
