"""Writes of the span editor. Every change names the annotation version it was made on; a change made
on a stale version raises `EditConflict` and changes nothing, so a second tab never overwrites work.

A change is a small dict (`{"op": "add", "start": 3, "end": 6, ...}`); applying it records its inverse
in `Annotation.undo_log`, so undo is just another change. Offsets are Python code-point offsets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from annotation.models import Annotation, Post, Prediction, Span
from annotation.selectors import editor_spans
from annotation.services.queue import assignment_complete
from kb.index import get_index
from kb.linking import BrandIndex, normalize
from kb.models import Brand, Category

UNDO_DEPTH = 50


class EditError(ValueError):
    """A change that cannot apply (bad offsets, an overlap, an unknown brand...)."""


class EditConflict(Exception):
    """The annotation changed since the editor loaded it (another tab, another device)."""

    def __init__(self, annotation: Annotation, op: dict):
        self.annotation, self.op = annotation, op
        super().__init__(f"annotation {annotation.pk} is at version {annotation.version}")


@dataclass
class Applied:
    annotation: Annotation
    message: str = ""
    inverse: list[dict] = field(default_factory=list)
    # The annotation's spans after the change (brand and category attached) and the categories, so
    # the editor can render its span list without querying again.
    spans: list[Span] = field(default_factory=list)
    categories: list[Category] = field(default_factory=list)


def annotation_for_editing(*, user, post: Post) -> Annotation:
    """The annotator's own working copy of the post (never anyone else's)."""
    annotation = Annotation.objects.filter(post=post, annotator=user, is_gold=False).first()
    if annotation is None:
        try:
            with transaction.atomic():
                annotation = Annotation.objects.create(post=post, annotator=user)
        except IntegrityError:  # two tabs opened the post at once
            annotation = Annotation.objects.get(post=post, annotator=user, is_gold=False)
    return annotation


def is_read_only(annotation: Annotation) -> bool:
    """Submitted work stays as the reviewer will see it until its annotator reopens it; reviewed work
    never changes."""
    return not annotation.is_gold and annotation.status in (
        Annotation.Status.SUBMITTED, Annotation.Status.ACCEPTED, Annotation.Status.REJECTED)


def can_reopen(annotation: Annotation) -> bool:
    return not annotation.is_gold and annotation.status == Annotation.Status.SUBMITTED


def _refuse_if_read_only(annotation: Annotation) -> None:
    if can_reopen(annotation):
        raise EditError("This annotation is submitted: reopen it to change it.")
    if is_read_only(annotation):
        raise EditError("This annotation has been reviewed and can no longer change.")


@transaction.atomic
def annotation_reopen(*, annotation: Annotation, version: int) -> Annotation:
    """Back to a draft, out of the review queue until it is submitted again (a review page that showed
    the submitted version then refuses to decide on it)."""
    if annotation.version != version:
        raise EditConflict(annotation, {"op": "reopen"})
    if not can_reopen(annotation):
        raise EditError("Only a submitted annotation that is not yet reviewed can be reopened.")
    updated = Annotation.objects.filter(pk=annotation.pk, version=version, status=Annotation.Status.SUBMITTED).update(
        status=Annotation.Status.DRAFT, submitted_at=None, version=version + 1, updated_at=timezone.now())
    if not updated:
        raise EditConflict(Annotation.objects.get(pk=annotation.pk), {"op": "reopen"})
    annotation.refresh_from_db()
    return annotation


# --- applying changes -------------------------------------------------------------------------

@transaction.atomic
def annotation_change(
    *, annotation: Annotation, version: int, op: dict, active_seconds: float = 0.0, record_undo: bool = True
) -> Applied:
    """Apply one change made on `version`. Raises EditConflict (stale version) or EditError."""
    if annotation.version != version:
        raise EditConflict(annotation, op)
    _refuse_if_read_only(annotation)
    before = (annotation.is_beauty, annotation.no_brands, annotation.dismissed)
    session = EditSession.open(annotation)
    try:
        inverse, message = _apply(session, op)
    except EditError:
        # The transaction rolls the rows back; put the in-memory copy back too.
        annotation.is_beauty, annotation.no_brands, annotation.dismissed = before
        raise
    log = list(annotation.undo_log)
    if record_undo and inverse:
        log = (log + [{"inverse": inverse, "label": message}])[-UNDO_DEPTH:]
    _bump(annotation, version, active_seconds, undo_log=log)
    return session.applied(message, inverse)


@transaction.atomic
def annotation_undo(*, annotation: Annotation, version: int, active_seconds: float = 0.0) -> Applied:
    if annotation.version != version:
        raise EditConflict(annotation, {"op": "undo"})
    _refuse_if_read_only(annotation)
    log = list(annotation.undo_log)
    if not log:
        raise EditError("Nothing to undo.")
    entry = log.pop()
    session = EditSession.open(annotation)
    for inverse_op in entry["inverse"]:
        _apply(session, inverse_op)
    _bump(annotation, version, active_seconds, undo_log=log)
    return session.applied(f"Undid: {entry['label']}", [])


# The categories change only through the admin (or `categories_ensure`), and every such change bumps
# the KB version (kb.signals), so they are kept with the KB index: read again whenever it is rebuilt.
_categories: tuple[object, list[Category], dict[str, Category], dict[int, Category]] | None = None


def _categories_for(index) -> tuple[list[Category], dict[str, Category], dict[int, Category]]:
    global _categories
    cached = _categories
    if cached is None or cached[0] is not index:
        cats = list(Category.objects.all())
        cached = _categories = (index, cats, {c.slug: c for c in cats}, {c.pk: c for c in cats})
    return cached[1:]


@dataclass
class EditSession:
    """What one change works on, read once (one query for the spans) and dropped when it is done: the
    annotation, its spans, the categories and the KB index. The save request stays a handful of queries."""

    annotation: Annotation
    index: BrandIndex
    categories: list[Category]
    category_by_slug: dict[str, Category]
    category_by_pk: dict[int, Category]
    spans: list[Span]  # unordered while the change runs; sorted in `applied`

    @classmethod
    def open(cls, annotation: Annotation) -> EditSession:
        index = get_index()
        cats, by_slug, by_pk = _categories_for(index)
        session = cls(annotation, index, cats, by_slug, by_pk, editor_spans(annotation_id=annotation.pk))
        for span in session.spans:  # what the span list shows, without joining brand and category
            session.show(span)
        return session

    def applied(self, message: str, inverse: list[dict]) -> Applied:
        spans = sorted(self.spans, key=lambda s: (s.start, s.end))
        return Applied(self.annotation, message, inverse, spans, self.categories)

    def find(self, start: int, end: int) -> Span | None:
        return next((s for s in self.spans if s.start == start and s.end == end), None)

    def show(self, span: Span) -> None:
        """Attach what the span list shows: brand name, category, and the source the span came from."""
        span.brand = self.brand_for_display(span.brand_id)
        span.category = self.category_by_pk.get(span.category_id)
        span.source = span.suggested_by.split(":", 1)[0]

    def brand_for_display(self, brand_id: int | None) -> Brand | None:
        """A Brand carrying what the span list shows, from the in-memory KB index when it knows it."""
        if brand_id is None:
            return None
        entry = self.index.by_id.get(brand_id)
        if entry is not None:
            return Brand(pk=entry.brand_id, canonical_name=entry.canonical_name)
        return Brand.objects.filter(pk=brand_id).first()

    def brand_category_id(self, brand_id: int) -> int | None:
        entry = self.index.by_id.get(brand_id)
        if entry is not None and entry.category in self.category_by_slug:
            return self.category_by_slug[entry.category].pk
        return Brand.objects.filter(pk=brand_id).values_list("category_id", flat=True).first()

    def brand_id(self, op: dict) -> int | None:
        brand_id = _optional_id(op, "brand_id")
        if brand_id is not None and brand_id not in self.index.by_id and not Brand.objects.filter(pk=brand_id).exists():
            raise EditError(f"Unknown brand {brand_id}.")
        return brand_id

    def category_id(self, op: dict) -> int | None:
        if op.get("category_id") not in (None, ""):
            pk = _int(op, "category_id")
            if pk not in self.category_by_pk:
                raise EditError(f"Unknown category {pk}.")
            return pk
        if op.get("category"):
            cat = self.category_by_slug.get(op["category"])
            if cat is None:
                raise EditError(f"Unknown category {op['category']!r}.")
            return cat.pk
        return None


def _update(model, *, where: dict, values: dict) -> int:
    """`model.objects.filter(**where).update(**values)` for plain field names, returning the row count.
    The save writes two rows, and building and compiling each ORM update takes longer than the
    database's write (bench/editor.py), so these are SQL; each value is still prepared by its field."""
    meta, quote = model._meta, connection.ops.quote_name
    assigned = [(meta.get_field(name), value) for name, value in values.items()]
    matched = [(meta.get_field(name), value) for name, value in where.items()]
    sql = (f"UPDATE {quote(meta.db_table)} SET {', '.join(f'{quote(f.column)} = %s' for f, _ in assigned)}"
           f" WHERE {' AND '.join(f'{quote(f.column)} = %s' for f, _ in matched)}")
    with connection.cursor() as cursor:
        cursor.execute(sql, [f.get_db_prep_save(v, connection) for f, v in assigned + matched])
        return cursor.rowcount


def _bump(annotation: Annotation, version: int, active_seconds: float, *, undo_log: list) -> None:
    """The optimistic lock: the row moves to version+1 only if nobody moved it since `version`."""
    active = max(0.0, min(float(active_seconds or 0), 600.0))  # one request never claims more than 10 min
    now = timezone.now()
    # Plain values, not F() expressions: the WHERE on the version guarantees the row is still the
    # one this request read, so its counters are current.
    updated = _update(Annotation, where={"id": annotation.pk, "version": version}, values={
        "version": version + 1, "undo_log": undo_log, "dismissed": annotation.dismissed,
        "is_beauty": annotation.is_beauty, "no_brands": annotation.no_brands,
        "active_seconds": annotation.active_seconds + active, "updated_at": now,
    })
    if not updated:
        fresh = Annotation.objects.get(pk=annotation.pk)
        raise EditConflict(fresh, {})
    annotation.version = version + 1
    annotation.undo_log = undo_log
    annotation.active_seconds += active
    annotation.updated_at = now


def _apply(session: EditSession, op: dict) -> tuple[list[dict], str]:
    handler = OPS.get(op.get("op")) if isinstance(op.get("op"), str) else None
    if handler is None:
        raise EditError(f"Unknown change {op.get('op')!r}.")
    return handler(session, op)


MAX_ID = 2**31 - 1  # the largest id any of our tables hands out; a longer number is an error, not a query
MAX_DISMISS_KEY = 300


def _int(op: dict, key: str) -> int:
    try:
        value = int(op[key])
    except (KeyError, TypeError, ValueError, OverflowError):
        raise EditError(f"{key} must be a whole number.") from None
    if abs(value) > MAX_ID:
        raise EditError(f"{key} is out of range.")
    return value


def _optional_id(op: dict, key: str) -> int | None:
    return None if op.get(key) in (None, "") else _int(op, key)


def _span_dict(span: Span) -> dict:
    return {"op": "add", "start": span.start, "end": span.end, "brand_id": span.brand_id, "brand_text": span.brand_text,
            "category_id": span.category_id, "suggested_by": span.suggested_by, "link": False}


def _op_add(session: EditSession, op: dict) -> tuple[list[dict], str]:
    annotation = session.annotation
    text = annotation.post.text
    start, end = _int(op, "start"), _int(op, "end")
    if not 0 <= start < end <= len(text):
        raise EditError(f"A span must lie inside the text (0–{len(text)}), got {start}–{end}.")
    # Whitespace at the edges is never part of a mention (a drag often grabs the next space).
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start == end:
        raise EditError("Select some text, not only spaces.")
    spans = session.spans
    overlapping = [s for s in spans if s.start < end and s.end > start]
    if overlapping and not op.get("replace"):
        other = overlapping[0]
        raise EditError(f"“{text[start:end]}” overlaps “{other.text}”; delete that span first.")
    inverse = [_span_dict(s) for s in overlapping]
    if overlapping:
        Span.objects.filter(pk__in=[s.pk for s in overlapping]).delete()
        spans[:] = [s for s in spans if s not in overlapping]
    brand_id = session.brand_id(op)
    category_id = session.category_id(op)
    brand_text = (op.get("brand_text") or "")[:200]
    if brand_id is None and not brand_text and op.get("link", True):
        link = session.index.resolve(text[start:end], context=text)
        if link.brand is not None:
            brand_id = link.brand.brand_id
    if brand_id is not None and category_id is None:
        category_id = session.brand_category_id(brand_id)
    span = Span.objects.create(
        annotation=annotation, start=start, end=end, text=text[start:end][:500], brand_id=brand_id,
        brand_text=brand_text, category_id=category_id, suggested_by=(op.get("suggested_by") or "")[:140],
    )
    session.show(span)
    spans.append(span)
    if annotation.no_brands:
        annotation.no_brands = False
    return [{"op": "delete", "start": span.start, "end": span.end}] + inverse, f"added “{span.text}”"


def _op_delete(session: EditSession, op: dict) -> tuple[list[dict], str]:
    span = session.find(_int(op, "start"), _int(op, "end"))
    if span is None:
        raise EditError("That span is already gone.")
    inverse = [_span_dict(span)]
    Span.objects.filter(pk=span.pk).delete()
    session.spans.remove(span)
    return inverse, f"deleted “{span.text}”"


def _op_update(session: EditSession, op: dict) -> tuple[list[dict], str]:
    span = session.find(_int(op, "start"), _int(op, "end"))
    if span is None:
        raise EditError("That span no longer exists.")
    before = {"op": "update", "start": span.start, "end": span.end}
    changed = []
    if "category_id" in op or "category" in op:
        before["category_id"] = span.category_id
        span.category_id = session.category_id(op)
        changed.append("category_id")
    if "brand_id" in op or "brand_text" in op:
        before["brand_id"], before["brand_text"] = span.brand_id, span.brand_text
        span.brand_id = session.brand_id(op)
        span.brand_text = (op.get("brand_text") or "")[:200] if span.brand_id is None else ""
        changed += ["brand_id", "brand_text"]
        if span.brand_id is not None and "category_id" not in changed and span.category_id is None:
            span.category_id = session.brand_category_id(span.brand_id)
            before.setdefault("category_id", None)
            changed.append("category_id")
    if not changed:
        raise EditError("Nothing to change.")
    _update(Span, where={"id": span.pk}, values={name: getattr(span, name) for name in changed})
    session.show(span)
    return [before], f"changed “{span.text}”"


def _op_flag(session: EditSession, op: dict) -> tuple[list[dict], str]:
    annotation = session.annotation
    before = {"op": "flag", "is_beauty": annotation.is_beauty, "no_brands": annotation.no_brands}
    if "is_beauty" in op:
        annotation.is_beauty = op["is_beauty"] if op["is_beauty"] in (True, False, None) else str(op["is_beauty"]) == "true"
    if "no_brands" in op:
        annotation.no_brands = op["no_brands"] in (True, "true", "1", 1)
    if annotation.no_brands and session.spans:
        raise EditError("Delete the spans before marking the post as having no brands.")
    return [before], "changed the post flags"


def _op_dismiss(session: EditSession, op: dict) -> tuple[list[dict], str]:
    annotation = session.annotation
    key = str(op.get("key", ""))
    if not key or len(key) > MAX_DISMISS_KEY:
        raise EditError("That is not a suggestion of this post.")
    if key in annotation.dismissed:
        return [], ""
    annotation.dismissed = annotation.dismissed + [key]
    return [{"op": "undismiss", "key": key}], "rejected a suggestion"


def _op_undismiss(session: EditSession, op: dict) -> tuple[list[dict], str]:
    annotation = session.annotation
    key = str(op.get("key", ""))
    annotation.dismissed = [k for k in annotation.dismissed if k != key]
    return [{"op": "dismiss", "key": key}], "restored a suggestion"


def _op_batch(session: EditSession, op: dict) -> tuple[list[dict], str]:
    """Inverse of a multi-span change: applied in order."""
    inverse: list[dict] = []
    ops = op.get("ops", [])
    if isinstance(ops, str):  # from a form: a JSON list
        try:
            ops = json.loads(ops)
        except ValueError:
            raise EditError("ops must be a JSON list of changes.") from None
    if not isinstance(ops, list) or not all(isinstance(sub, dict) for sub in ops):
        raise EditError("ops must be a JSON list of changes.")
    for sub in ops:
        sub_inverse, _ = _apply(session, sub)
        inverse = sub_inverse + inverse
    return inverse, op.get("label", "changed several spans")


def suggestions_for(post: Post) -> list[Prediction]:
    return list(post.predictions.filter(status=Prediction.Status.OK).order_by("source", "-created_at"))


def _suggestion(annotation: Annotation, source: str, start: int, end: int) -> tuple[Prediction, dict]:
    for prediction in suggestions_for(annotation.post):
        if prediction.source != source:
            continue
        for s in prediction.spans:
            if s["start"] == start and s["end"] == end:
                return prediction, s
    raise EditError("That suggestion is no longer available.")


def _suggestion_op(prediction: Prediction, s: dict) -> dict:
    category = s.get("category") or None
    brand_id = s.get("brand_id") or None
    if brand_id is None and s.get("brand"):  # a canonical name the KB knows, e.g. from the teacher
        entry = get_index().by_canonical.get(normalize(s["brand"]))
        brand_id = entry.brand_id if entry else None
    return {"op": "add", "start": s["start"], "end": s["end"], "brand_id": brand_id,
            "brand_text": "" if brand_id else (s.get("brand") or ""), "category": category,
            "suggested_by": f"{prediction.source}:{prediction.model_version}", "replace": True,
            "link": not s.get("brand_id") and not s.get("brand")}


def _op_accept(session: EditSession, op: dict) -> tuple[list[dict], str]:
    annotation = session.annotation
    prediction, s = _suggestion(annotation, str(op.get("source")), _int(op, "start"), _int(op, "end"))
    inverse, _ = _op_add(session, _suggestion_op(prediction, s))
    return inverse, f"accepted “{s.get('text', '')}” from the {prediction.source}"


def _op_accept_all(session: EditSession, op: dict) -> tuple[list[dict], str]:
    annotation = session.annotation
    source = str(op.get("source"))
    have = {(s.start, s.end) for s in session.spans}
    inverse: list[dict] = []
    n = 0
    for prediction in suggestions_for(annotation.post):
        if prediction.source != source:
            continue
        for s in prediction.spans:
            key = f"{source}:{s['start']}:{s['end']}"
            if (s["start"], s["end"]) in have or key in annotation.dismissed:
                continue
            sub_inverse, _ = _op_add(session, _suggestion_op(prediction, s))
            have.add((s["start"], s["end"]))
            inverse = sub_inverse + inverse
            n += 1
        break  # the newest prediction of the source only
    if not n:
        raise EditError(f"No open suggestions from the {source}.")
    return inverse, f"accepted {n} suggestion{'s' if n != 1 else ''} from the {source}"


# --- submitting -------------------------------------------------------------------------------

# op name → handler(session, op) -> (inverse changes, message); `_apply` dispatches through it.
OPS = {
    "add": _op_add, "delete": _op_delete, "update": _op_update, "flag": _op_flag, "dismiss": _op_dismiss,
    "undismiss": _op_undismiss, "accept": _op_accept, "accept_all": _op_accept_all, "batch": _op_batch,
}


@transaction.atomic
def annotation_submit(*, annotation: Annotation, version: int, active_seconds: float = 0.0) -> Annotation:
    if annotation.version != version:
        raise EditConflict(annotation, {"op": "submit"})
    _refuse_if_read_only(annotation)
    spans = list(annotation.spans.all())
    if annotation.is_beauty is None:
        annotation.is_beauty = True
    if not spans:
        annotation.no_brands = True
    annotation.suggestions_accepted = suggestions_kept(annotation, spans)
    _bump(annotation, version, active_seconds, undo_log=annotation.undo_log)
    now = timezone.now()
    if not annotation.is_gold:
        Annotation.objects.filter(pk=annotation.pk).update(
            status=Annotation.Status.SUBMITTED, submitted_at=now, suggestions_accepted=annotation.suggestions_accepted
        )
        annotation.status, annotation.submitted_at = Annotation.Status.SUBMITTED, now
        assignment_complete(user=annotation.annotator, post_id=annotation.post_id)
    else:
        Annotation.objects.filter(pk=annotation.pk).update(suggestions_accepted=annotation.suggestions_accepted)
    return annotation


def suggestions_kept(annotation: Annotation, spans: list[Span]) -> int:
    """Spans that are exactly a suggestion: same boundaries, same brand, same category."""
    cats = dict(Category.objects.values_list("slug", "pk"))
    offered = set()
    for prediction in suggestions_for(annotation.post):
        for s in prediction.spans:
            offered.add((s["start"], s["end"], s.get("brand_id") or None, cats.get(s.get("category"))))
    return sum((s.start, s.end, s.brand_id, s.category_id) in offered for s in spans)


# --- brand candidates (unlinked mentions) -----------------------------------------------------

@transaction.atomic
def spans_link_unlinked(*, normalized: str, brand: Brand) -> int:
    """Link every unlinked span whose mention normalises to `normalized` (after an admin created the
    brand or the alias)."""
    ids = [
        pk for pk, text, brand_text in Span.objects.filter(brand__isnull=True).values_list("pk", "text", "brand_text")
        if normalize(brand_text or text) == normalized or normalize(text) == normalized
    ]
    return Span.objects.filter(pk__in=ids).update(brand=brand, brand_text="")
