"""Post import from JSONL (the interchange format) and CSV, streamed line by line.

Bad rows are reported with their line numbers and skipped; good rows land. Posts are deduplicated
by the sha256 of their exact text. Rows that carry `brands`/`is_beauty` become gold annotations.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Iterator, Sequence

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from annotation.datasets.interchange import content_hash  # noqa: F401  (the post identity; callers import it from here)
from annotation.models import Annotation, ImportBatch, Post, Repost, Span
from annotation.services.users import system_user
from kb.index import get_index
from kb.linking import Link
from kb.models import Category

log = logging.getLogger(__name__)

MAX_STORED_ERRORS = 1000
CHUNK_ROWS = 500
CSV_OPTIONAL = ("id", "platform", "posted_at", "author", "url", "lang", "source")
# Checked before the database sees them: PostgreSQL refuses an overlong value (failing the whole chunk).
SPAN_TEXT_MAX = Span._meta.get_field("text").max_length
BRAND_TEXT_MAX = Span._meta.get_field("brand_text").max_length


class RowError(ValueError):
    pass


def detect_format(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return ImportBatch.Format.JSONL
    if suffix in {".csv", ".tsv"}:
        return ImportBatch.Format.CSV
    raise ValueError(f"Unsupported file type {suffix or '(none)'}: use .jsonl or .csv")


@dataclass
class ParsedRow:
    line: int
    external_id: str
    platform: str
    text: str
    posted_at: datetime | None
    author: str
    url: str
    lang: str
    source: str
    labelled: bool
    is_beauty: bool | None
    spans: list[dict]


def import_batch_create(*, path: Path, filename: str, user=None, fmt: str | None = None) -> ImportBatch:
    return ImportBatch.objects.create(
        filename=filename,
        format=fmt or detect_format(filename),
        stored_path=str(path),
        size_bytes=path.stat().st_size,
        created_by=user,
    )


def import_batch_run(*, batch: ImportBatch, delete_file: bool = False, resume: bool = False) -> ImportBatch:
    """Run an import to the end; progress is saved on the batch every chunk, in the chunk's transaction.
    With `resume` (the worker running it died), the lines up to the batch's saved `lines_read` were
    stored or reported already: they are read past, and the counters go on from the saved ones."""
    if resume:
        batch.refresh_from_db()
    done_through = batch.lines_read if resume else 0
    batch.status = ImportBatch.Status.RUNNING
    batch.save(update_fields=["status"])
    path = Path(batch.stored_path)
    categories = {c.slug: c for c in Category.objects.all()}
    gold_author = system_user()
    try:
        with path.open("rb") as raw:
            reader = _iter_jsonl(raw) if batch.format == ImportBatch.Format.JSONL else _iter_csv(raw)
            chunk: list[ParsedRow] = []
            for item in reader:
                line, row_or_error, position = item
                if line <= done_through:
                    continue
                batch.lines_read = line
                batch.bytes_read = position
                if isinstance(row_or_error, RowError):
                    _record_error(batch, line, str(row_or_error))
                else:
                    chunk.append(row_or_error)
                if len(chunk) >= CHUNK_ROWS:
                    _store_chunk_counted(batch, chunk, categories, gold_author)
                    chunk = []
            _store_chunk_counted(batch, chunk, categories, gold_author)
    except Exception as exc:  # a broken file or database: the batch says so, nothing is half-reported
        log.exception("import failed", extra={"batch": batch.pk})
        batch.status = ImportBatch.Status.FAILED
        batch.failure = f"{type(exc).__name__}: {exc}"
    else:
        batch.status = ImportBatch.Status.DONE
        batch.bytes_read = batch.size_bytes
    batch.finished_at = timezone.now()
    batch.save()
    if delete_file and batch.status == ImportBatch.Status.DONE:
        path.unlink(missing_ok=True)
    log.info("import finished", extra={"batch": batch.pk, "posts_created": batch.posts_created,
                                        "duplicates": batch.posts_duplicate, "errors": batch.error_count})
    return batch


def import_file(*, path: Path, user=None) -> ImportBatch:
    batch = import_batch_create(path=path, filename=path.name, user=user)
    return import_batch_run(batch=batch)


def import_objects(*, objects: Sequence[object], label: str, user=None, match_external_id: bool = False) -> ImportBatch:
    """Import decoded interchange objects (the JSON API) with the file import's validation and storage.

    A bad object is recorded with its 0-based index as its `line`, and the others land. With
    `match_external_id`, a post whose (platform, id) is already stored counts as a duplicate too, so a
    client re-sending an item it has edited does not get a second post.
    """
    batch = ImportBatch.objects.create(filename=label[:255], format=ImportBatch.Format.JSONL,
                                       status=ImportBatch.Status.RUNNING, created_by=user)
    categories = {c.slug: c for c in Category.objects.all()}
    gold_author = system_user()
    chunk: list[ParsedRow] = []
    for index, obj in enumerate(objects):
        batch.lines_read = index + 1
        try:
            chunk.append(_parse_obj(obj, index))
        except RowError as exc:
            _record_error(batch, index, str(exc))
        if len(chunk) >= CHUNK_ROWS:
            _store_chunk_once_more_on_conflict(batch, chunk, categories, gold_author, match_external_id)
            chunk = []
    _store_chunk_once_more_on_conflict(batch, chunk, categories, gold_author, match_external_id)
    batch.status = ImportBatch.Status.DONE
    batch.finished_at = timezone.now()
    batch.save()
    return batch


def _store_chunk_once_more_on_conflict(batch, rows, categories, gold_author, match_external_id) -> None:
    """A client retrying a request that is still running sends the same posts twice at once: the loser's
    insert hits the unique content hash (or one gold per post); its chunk rolled back, it reads again."""
    try:
        _store_chunk_counted(batch, rows, categories, gold_author, match_external_id=match_external_id)
    except IntegrityError:
        _store_chunk_counted(batch, rows, categories, gold_author, match_external_id=match_external_id)


def _store_chunk_counted(batch, rows, categories, gold_author, *, match_external_id: bool = False) -> None:
    """A chunk whose transaction rolls back takes its counts and errors with it: the batch counts only
    what is in the database."""
    counters = ("posts_created", "posts_duplicate", "reposts_created", "gold_created", "spans_created", "error_count")
    saved = {name: getattr(batch, name) for name in counters}, list(batch.errors)
    try:
        _store_chunk(batch, rows, categories, gold_author, match_external_id=match_external_id)
    except Exception:
        for name, value in saved[0].items():
            setattr(batch, name, value)
        batch.errors = saved[1]
        raise


def _record_error(batch: ImportBatch, line: int, message: str) -> None:
    batch.error_count += 1
    if len(batch.errors) < MAX_STORED_ERRORS:
        batch.errors.append({"line": line, "error": message})


def _iter_jsonl(raw: IO[bytes]) -> Iterator[tuple[int, ParsedRow | RowError, int]]:
    position = 0
    for line_no, line in enumerate(raw, start=1):
        position += len(line)
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            yield line_no, RowError("not UTF-8"), position
            continue
        except json.JSONDecodeError as exc:
            yield line_no, RowError(f"invalid JSON: {exc.msg} (column {exc.colno})"), position
            continue
        except RecursionError:  # the decoder recurses once per nesting level: `[[[[...]]]]` exhausts the stack
            yield line_no, RowError("invalid JSON: nested too deeply"), position
            continue
        try:
            yield line_no, _parse_obj(obj, line_no), position
        except RowError as exc:
            yield line_no, exc, position


def _iter_csv(raw: IO[bytes]) -> Iterator[tuple[int, ParsedRow | RowError, int]]:
    # A byte that is not UTF-8 spoils only its own row: decoding stops at nothing (it would lose the whole
    # read-ahead buffer), the byte travels as a surrogate escape, and its row reports it.
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.DictReader(text)
    if not reader.fieldnames or "text" not in reader.fieldnames:
        yield 1, RowError("CSV header must have a 'text' column"), 0
        return
    last_line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a field over the csv module's limit: that line is lost, the next is read
            last_line = max(last_line + 1, reader.line_num)  # the reader consumed the line without counting it
            yield last_line, RowError(f"unreadable CSV row: {exc}"), raw.tell()
            continue
        line_no, last_line = last_line + 1, reader.line_num
        if None in row:
            yield line_no, RowError("more fields than the header"), raw.tell()
            continue
        if not _is_utf8(row.values()):
            yield line_no, RowError("not UTF-8"), raw.tell()
            continue
        obj = {k: v for k, v in row.items() if v not in (None, "")}
        for key in ("brands", "is_beauty"):  # CSV carries labels as JSON text
            if key in obj:
                try:
                    obj[key] = json.loads(obj[key])
                except json.JSONDecodeError:
                    yield line_no, RowError(f"column {key!r} is not valid JSON"), raw.tell()
                    break
        else:
            try:
                yield line_no, _parse_obj(obj, line_no), raw.tell()
            except RowError as exc:
                yield line_no, exc, raw.tell()


def _is_utf8(values) -> bool:
    try:
        "".join(v for v in values if v).encode("utf-8")
    except UnicodeEncodeError:  # a surrogate escape: a byte that was not UTF-8
        return False
    return True


def _unstorable(value: object, where: str = "") -> str | None:
    """Why a decoded value cannot be stored as text (a NUL, which PostgreSQL refuses, or a lone UTF-16
    surrogate such as a JSON "\\ud800", which no UTF-8 database holds), naming the field; else None."""
    if isinstance(value, str):
        if "\x00" in value:
            return f"{where or 'a value'} contains a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{where or 'a value'} is not valid Unicode (a lone surrogate)"
    elif isinstance(value, dict):
        return next((why for k, v in value.items() if (why := _unstorable(k, "a key") or _unstorable(
            v, f"{where}.{k}" if where else str(k)))), None)
    elif isinstance(value, list):
        return next((why for i, v in enumerate(value) if (why := _unstorable(v, f"{where}[{i}]"))), None)
    return None


def _parse_obj(obj: object, line_no: int) -> ParsedRow:
    if not isinstance(obj, dict):
        raise RowError("each line (item) must be a JSON object")
    if why := _unstorable(obj):
        raise RowError(why)
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise RowError("missing or empty 'text'")
    posted_at = None
    if obj.get("posted_at"):
        try:
            posted_at = parse_datetime(str(obj["posted_at"]))
        except ValueError as exc:  # well formed, but no such day or hour: 2024-02-30T10:00
            raise RowError(f"posted_at {obj['posted_at']!r} is not a valid date-time: {exc}") from None
        if posted_at is None:
            raise RowError(f"posted_at {obj['posted_at']!r} is not an ISO 8601 date-time")
        if timezone.is_naive(posted_at):
            posted_at = timezone.make_aware(posted_at, timezone.utc)
    labelled = "brands" in obj or "is_beauty" in obj
    is_beauty = obj.get("is_beauty")
    if is_beauty is not None and not isinstance(is_beauty, bool):
        raise RowError("'is_beauty' must be true, false or null")
    brands = obj.get("brands") or []
    if not isinstance(brands, list):
        raise RowError("'brands' must be a list")
    spans = [_parse_span(b, text, i) for i, b in enumerate(brands)]
    spans.sort(key=lambda s: (s["start"], s["end"]))
    for a, b in zip(spans, spans[1:]):
        if b["start"] < a["end"]:
            raise RowError(f"spans overlap: {a['text']!r} and {b['text']!r}")
    return ParsedRow(
        line=line_no,
        external_id=str(obj.get("id") or "")[:200],
        platform=str(obj.get("platform") or "")[:32],
        text=text,
        posted_at=posted_at,
        author=str(obj.get("author") or "")[:200],
        url=str(obj.get("url") or "")[:1000],
        lang=str(obj.get("lang") or "")[:16],
        source=str(obj.get("source") or "")[:200],
        labelled=labelled,
        is_beauty=is_beauty,
        spans=spans,
    )


def _parse_span(span: object, text: str, i: int) -> dict:
    if not isinstance(span, dict):
        raise RowError(f"brands[{i}] must be an object")
    start, end = span.get("start"), span.get("end")
    if not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool) or isinstance(end, bool):
        raise RowError(f"brands[{i}]: start and end must be integers")
    if not 0 <= start < end <= len(text):
        raise RowError(f"brands[{i}]: offsets {start}:{end} outside the text (length {len(text)})")
    written = text[start:end]
    if len(written) > SPAN_TEXT_MAX:
        raise RowError(f"brands[{i}]: text is {len(written)} characters, longer than the {SPAN_TEXT_MAX} a span holds")
    if "text" in span and span["text"] != written:
        raise RowError(f"brands[{i}]: text {span['text']!r} does not match the offsets {start}:{end} ({written!r})")
    category = span.get("category")
    if category is not None and not isinstance(category, str):
        raise RowError(f"brands[{i}]: category must be a string")
    brand = span.get("brand")
    if brand is not None and not isinstance(brand, str):
        raise RowError(f"brands[{i}]: brand must be a string")
    if brand and len(brand) > BRAND_TEXT_MAX:
        raise RowError(f"brands[{i}]: brand is {len(brand)} characters, longer than the {BRAND_TEXT_MAX} a brand name holds")
    return {"start": start, "end": end, "text": written, "brand": brand or "",
            "category": (category or "").lower()}


@transaction.atomic
def _store_chunk(batch: ImportBatch, rows: list[ParsedRow], categories: dict, gold_author, *,
                 match_external_id: bool = False) -> None:
    if not rows:
        batch.save()
        return
    index = get_index()
    hashes = {content_hash(r.text) for r in rows}
    existing = {p.content_hash: p for p in Post.objects.filter(content_hash__in=hashes)}
    by_external_id = _posts_by_external_id(rows) if match_external_id else {}
    has_gold = set(
        Annotation.objects.filter(post__content_hash__in=hashes, is_gold=True).values_list("post__content_hash", flat=True)
    )
    known_ids = _known_ids(rows, set(by_external_id) if match_external_id else None)
    for row in rows:
        h = content_hash(row.text)
        category_error = next((s["category"] for s in row.spans if s["category"] and s["category"] not in categories), None)
        if category_error:
            _record_error(batch, row.line, f"unknown category {category_error!r}")
            continue
        post = existing.get(h)
        if post is None and (row.platform, row.external_id) in by_external_id:
            # The same item with another text (edited since it was sent): kept as first stored, and its
            # labels, whose offsets are into the new text, are not put on the old one.
            batch.posts_duplicate += 1
            continue
        if post is None:
            post = Post.objects.create(
                platform=row.platform, external_id=row.external_id, author=row.author, posted_at=row.posted_at,
                text=row.text, lang=row.lang, url=row.url, source=row.source, content_hash=h, import_batch=batch,
            )
            existing[h] = post
            known_ids.add((row.platform, row.external_id))
            if match_external_id and row.external_id:
                by_external_id[(row.platform, row.external_id)] = post
            batch.posts_created += 1
        elif row.external_id and (row.platform, row.external_id) not in known_ids:
            # The same text under an (platform, id) not stored yet: a repost, counted as volume.
            Repost.objects.create(post=post, platform=row.platform, external_id=row.external_id, author=row.author,
                                  posted_at=row.posted_at, url=row.url, import_batch=batch)
            known_ids.add((row.platform, row.external_id))
            batch.reposts_created += 1
        else:
            batch.posts_duplicate += 1
        if row.labelled and h not in has_gold:
            _store_gold(batch, post, row, categories, gold_author, index)
            has_gold.add(h)
    batch.save()


def _known_ids(rows: list[ParsedRow], post_ids: set[tuple[str, str]] | None = None) -> set[tuple[str, str]]:
    """The rows' (platform, id) pairs already stored, as a post or a repost; a post created in this chunk
    adds its own pair as it goes. `post_ids`: the posts' pairs when the caller has read them already."""
    wanted = {(r.platform, r.external_id) for r in rows if r.external_id}
    ids = {i for _, i in wanted}
    if not ids:
        return set()
    if post_ids is None:
        post_ids = set(Post.objects.filter(external_id__in=ids).values_list("platform", "external_id"))
    known = post_ids | set(Repost.objects.filter(external_id__in=ids).values_list("platform", "external_id"))
    return known & wanted


def _posts_by_external_id(rows: list[ParsedRow]) -> dict[tuple[str, str], Post]:
    wanted = {(r.platform, r.external_id) for r in rows if r.external_id}
    if not wanted:
        return {}
    # One query on the (indexed) ids; the platform is matched here, it is nearly always the same one.
    posts = Post.objects.filter(external_id__in={i for _, i in wanted}).order_by("pk")
    out: dict[tuple[str, str], Post] = {}
    for post in posts:
        out.setdefault((post.platform, post.external_id), post)
    return {key: post for key, post in out.items() if key in wanted}


def _store_gold(batch, post, row: ParsedRow, categories, gold_author, index) -> None:
    annotation = Annotation.objects.create(
        post=post, annotator=gold_author, status=Annotation.Status.ACCEPTED, origin=Annotation.Origin.IMPORT,
        is_gold=True, is_beauty=row.is_beauty, no_brands=not row.spans, submitted_at=timezone.now(),
    )
    spans = []
    for s in row.spans:
        link = _link_gold(index, s, row.text)
        category = categories.get(s["category"]) or (categories.get(link.brand.category) if link.brand else None)
        spans.append(Span(
            annotation=annotation, start=s["start"], end=s["end"], text=s["text"], brand_id=link.brand_id,
            brand_text="" if link.brand else s["brand"], category=category,
        ))
    Span.objects.bulk_create(spans)
    batch.gold_created += 1
    batch.spans_created += len(spans)


def _link_gold(index, span: dict, text: str):
    """The labeller's canonical name decides; the written form only when no name was given."""
    if span["brand"]:
        entry, _ = index.lookup(span["brand"])
        return Link(entry, "gold" if entry else "none")
    return index.resolve(span["text"], context=text)
