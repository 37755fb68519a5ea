"""Small factories for the queue, editor and review tests."""

from __future__ import annotations

import itertools

from annotation.models import Annotation, Post, Prediction, Span
from annotation.services.importing import content_hash

_n = itertools.count(1)


def post(text: str | None = None, **kw) -> Post:
    text = text if text is not None else f"post {next(_n)} about my SK2 essence"
    return Post.objects.create(text=text, content_hash=content_hash(text), platform="tiktok", **kw)


def prediction(p: Post, source: str, spans: list[tuple[int, int]] | list[dict], *, confidence=None, is_beauty=True,
               model_version="v1", reasoning="", brand=None) -> Prediction:
    rows = []
    for s in spans:
        if isinstance(s, dict):
            rows.append(s)
        else:
            rows.append({"start": s[0], "end": s[1], "text": p.text[s[0]:s[1]], "brand": brand, "brand_id": None,
                         "category": "skincare", "confidence": confidence})
    return Prediction.objects.create(post=p, source=source, model_version=model_version, spans=rows,
                                     confidence=confidence, is_beauty=is_beauty, reasoning=reasoning)


def submitted(p: Post, user, spans: list[tuple[int, int]], *, is_beauty=True, brand=None, category=None) -> Annotation:
    from django.utils import timezone

    a = Annotation.objects.create(post=p, annotator=user, status=Annotation.Status.SUBMITTED, is_beauty=is_beauty,
                                  submitted_at=timezone.now(), no_brands=not spans)
    for s, e in spans:
        Span.objects.create(annotation=a, start=s, end=e, text=p.text[s:e], brand=brand, category=category)
    return a


MINI_KB = """canonical_name,aliases,category
SK-II,SKII|SK2,skincare
La Mer,LaMer,skincare
Shiseido,資生堂,skincare
Fenty Beauty,Fenty,makeup
Lancôme,Lancome,skincare
Glossier,,makeup
"""


def mini_kb() -> None:
    """A handful of real KB rows through the real import: fast, and enough for the editor's linking.
    The brand index is cached per process by KB version; alias writes bump the version only on
    commit, which a rolled-back test never reaches, so bump it here."""
    import io

    from kb.index import bump_index_version
    from kb.services import brands_import_csv

    brands_import_csv(stream=io.StringIO(MINI_KB))
    bump_index_version()
