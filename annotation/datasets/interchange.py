"""The interchange format (DESIGN.md) as a dataset version exports it.

One JSON object per line, Python `str` character offsets, end exclusive:
    {"id", "platform", "text", "posted_at", "is_beauty", "kind": "gold"|"silver",
     "brands": [{"start", "end", "text", "brand", "category"}]}
Silver lines also carry "teacher_model", "prompt_version" and "reasoning".

Lines are canonical: keys in a fixed order, no whitespace, UTF-8 (not \\u escapes), one `\\n` each,
posts in a fixed order. So the bytes of a file, and its sha256, depend only on what was frozen.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Iterable, Iterator, Mapping

SPLIT_FILES = {"train": "train.jsonl", "val": "val.jsonl", "test": "test.jsonl"}
SILVER_FILE = "silver.jsonl"
# The order the version hash runs over; gold splits first, silver (train only) beside them.
EXPORT_FILES = ("train.jsonl", "val.jsonl", "test.jsonl", SILVER_FILE)
MANIFEST_FILE = "manifest.json"
FORMAT = "beautybrain-dataset/1"
SHA256_RULE = ("sha256 over the lines '<sha256 of file>  <file name>\\n' (sha256sum format) for "
               "train.jsonl, val.jsonl, test.jsonl, silver.jsonl in that order")


def content_hash(text: str) -> str:
    """Same as the import's post identity: sha256 of the exact text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def format_datetime(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.replace(tzinfo=None).isoformat() + "Z"


def span_record(span: Mapping) -> dict:
    """Fixed key order, whatever order the database hands the JSON back in (jsonb sorts keys)."""
    return {"start": span["start"], "end": span["end"], "text": span["text"],
            "brand": span.get("brand") or None, "category": span.get("category") or None}


def item_record(*, external_id: str, platform: str, text: str, posted_at: datetime | str | None,
                is_beauty: bool | None, spans: Iterable[Mapping], kind: str = "gold",
                teacher_model: str = "", prompt_version: str = "", reasoning: str = "") -> dict:
    record = {
        "id": external_id,
        "platform": platform,
        "text": text,
        "posted_at": posted_at if isinstance(posted_at, str) or posted_at is None else format_datetime(posted_at),
        "is_beauty": is_beauty,
        "kind": kind,
        "brands": [span_record(s) for s in sorted(spans, key=lambda s: (s["start"], s["end"]))],
    }
    if kind == "silver":
        record.update(teacher_model=teacher_model, prompt_version=prompt_version, reasoning=reasoning)
    return record


def canonical_line(record: Mapping) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def version_sha256(file_hashes: Mapping[str, str]) -> str:
    listing = "".join(f"{file_hashes[name]}  {name}\n" for name in EXPORT_FILES)
    return hashlib.sha256(listing.encode("ascii")).hexdigest()


def read_jsonl(source: str | Path | IO[bytes]) -> Iterator[dict]:
    """Stream records from a path or a binary file object; blank lines are skipped."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as f:
            yield from read_jsonl(f)
        return
    for line in source:
        if line.strip():
            yield json.loads(line)


def read_split(directory: str | Path, split: str, *, with_silver: bool | None = None) -> Iterator[dict]:
    """Records of one split of an exported version; silver joins train unless with_silver=False."""
    directory = Path(directory)
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown split {split!r}")
    yield from read_jsonl(directory / SPLIT_FILES[split])
    if split == "train" and with_silver is not False and (directory / SILVER_FILE).exists():
        yield from read_jsonl(directory / SILVER_FILE)


def read_manifest(directory: str | Path) -> dict:
    return json.loads((Path(directory) / MANIFEST_FILE).read_text(encoding="utf-8"))


def verify_directory(directory: str | Path) -> bool:
    """True if the files in `directory` hash to the version sha256 recorded in its manifest."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    hashes = {}
    for name in EXPORT_FILES:
        h = hashlib.sha256()
        with open(directory / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        hashes[name] = h.hexdigest()
    return version_sha256(hashes) == manifest["sha256"]
