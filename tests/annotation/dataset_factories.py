"""Small factories for dataset tests: gold posts with spans, teacher predictions, texts by split."""

from __future__ import annotations

import itertools

from annotation.datasets import content_hash, split_for
from annotation.models import Annotation, Post, Prediction, Span
from annotation.services.users import system_user
from kb.models import Category

RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}
_counter = itertools.count(1)


def category(slug: str) -> Category:
    return Category.objects.get_or_create(slug=slug, defaults={"name": slug.title()})[0]


def post(text: str, **fields) -> Post:
    n = next(_counter)
    fields.setdefault("external_id", f"t{n}")
    fields.setdefault("platform", "tiktok")
    return Post.objects.create(text=text, content_hash=content_hash(text), **fields)


def gold(text: str, mentions: list[tuple[str, str, str]] = (), *, is_beauty: bool | None = True, **post_fields) -> Post:
    """mentions: (written text, brand, category); offsets are found in the text (first occurrence)."""
    p = post(text, **post_fields)
    annotation = Annotation.objects.create(post=p, annotator=system_user(), is_gold=True, is_beauty=is_beauty,
                                           status=Annotation.Status.ACCEPTED, origin=Annotation.Origin.IMPORT)
    for written, brand, cat in mentions:
        start = text.index(written)
        Span.objects.create(annotation=annotation, start=start, end=start + len(written), text=written,
                            brand_text=brand, category=category(cat))
    return p


def teacher(p: Post, mentions: list[tuple[str, str, str]] = (), *, status: str = Prediction.Status.OK,
            model: str = "gemini-2.5-flash", prompt: str = "p1", reasoning: str = "names a brand",
            spans: list[dict] | None = None) -> Prediction:
    if spans is None:
        spans = []
        for written, brand, cat in mentions:
            start = p.text.index(written)
            spans.append({"start": start, "end": start + len(written), "text": written, "brand": brand,
                          "brand_id": None, "category": cat, "confidence": 0.9})
    return Prediction.objects.create(post=p, source=Prediction.Source.TEACHER, model_version=model,
                                     prompt_version=prompt, spans=spans, is_beauty=True, brand_count=len(spans),
                                     reasoning=reasoning, status=status)


def text_in_split(split: str, template: str = "loving my {} serum from Glossier", ratios=RATIOS) -> str:
    """A fresh text whose content hash falls in `split`."""
    while True:
        text = template.format(next(_counter))
        if split_for(content_hash(text), ratios) == split:
            return text
