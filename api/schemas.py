"""Request and response schemas of /api/ (pydantic through django-ninja; they make /api/openapi.json)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from ninja import Field, Schema
from pydantic import StringConstraints

MAX_POSTS = 1000
MAX_TEXTS = 64
MAX_TEXT_CHARS = 20_000

POST_EXAMPLE = {"id": "tt-123", "platform": "tiktok", "text": "my SK2 essence > la mer tbh",
                "posted_at": "2026-04-01T10:00:00Z", "is_beauty": True,
                "brands": [{"start": 3, "end": 6, "text": "SK2", "brand": "SK-II", "category": "skincare"},
                           {"start": 17, "end": 23, "text": "la mer", "brand": "La Mer", "category": "skincare"}]}


class Error(Schema):
    detail: Any = Field(description="What went wrong: a sentence, or for 422 the list of invalid fields.")


class PostsIn(Schema):
    # Items stay untyped here on purpose: each is checked by the importer's row validation, so one bad
    # item is reported with its index while the others land (a typed list would refuse the whole batch).
    posts: list[Any] = Field(
        min_length=1, max_length=MAX_POSTS,
        description=("Up to 1000 posts in the interchange format (README, DESIGN.md): `text` required; "
                     "`id`, `platform`, `posted_at`, `author`, `url`, `lang`, `source` optional; `is_beauty` "
                     "and `brands` make the post gold."),
        json_schema_extra={"example": [POST_EXAMPLE]},
    )


class ItemError(Schema):
    index: int
    message: str


class PostsOut(Schema):
    created: int
    duplicates: int = Field(description="Already stored: the same (platform, id), or the same text without an id.")
    reposts: int = Field(0, description="A stored text under a new (platform, id): kept as a repost of that post, "
                                        "counted as volume in the reports, annotated once.")
    gold_created: int
    errors: list[ItemError]
    batch_id: int = Field(description="The import batch (Django admin: pre-label its posts from there).")


class Brand(Schema):
    start: int
    end: int
    text: str
    brand: str | None = Field(description="canonical name; for a brand the KB lacks, the name as found")
    brand_id: int | None = Field(None, description="KB brand id; null when the mention is not linked")
    category: str | None
    confidence: float | None = None


class ExtractIn(Schema):
    texts: list[Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]] = Field(min_length=1, max_length=MAX_TEXTS)
    model: str = Field("promoted", pattern=r"^(promoted|gazetteer|gen-\d{1,6})$",
                       description="'promoted' (the promoted generation), 'gen-N', or 'gazetteer'.")


class ExtractResult(Schema):
    brands: list[Brand]
    is_beauty: bool | None
    beauty_score: float | None = Field(None, description="student generations: P(is_beauty)")


class ExtractOut(Schema):
    model: str
    results: list[ExtractResult]


class MentionsQuery(Schema):
    date_from: str | None = Field(None, description="YYYY-MM-DD (posted_at, UTC)")
    date_to: str | None = Field(None, description="YYYY-MM-DD, inclusive")
    platform: str | None = None
    category: str | None = Field(None, description="category slug, e.g. skincare")
    brand: str | None = Field(None, description="canonical name or slug of a KB brand")
    source: str | None = Field(None, description="auto (default: gold, else the promoted generation), gold, gen-N")
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, description="`next` of the previous page")


class Mention(Schema):
    post_id: int
    platform: str
    posted_at: datetime | None
    brand: str
    brand_id: int | None
    brand_linked: bool
    category: str
    text: str
    source: str
    model_version: str
    confidence: float | None


class MentionsOut(Schema):
    source: str
    model_version: str
    results: list[Mention]
    next: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")


class GoldLabels(Schema):
    is_beauty: bool | None
    brands: list[Brand]


class PredictionOut(Schema):
    source: str
    model_version: str
    status: str
    is_beauty: bool | None
    brands: list[dict]
    created_at: datetime


class PostOut(Schema):
    post_id: int
    id: str = Field(description="The platform's id of the post (`id` in the interchange format).")
    platform: str
    text: str
    posted_at: datetime | None
    author: str
    url: str
    lang: str
    source: str
    created_at: datetime
    import_batch_id: int | None
    gold: GoldLabels | None
    predictions: list[PredictionOut]
