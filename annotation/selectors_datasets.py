"""Reads of dataset versions: listing, the export stream, the manifest, the diff between versions."""

from __future__ import annotations

import json
from typing import Iterator

from annotation.datasets.diff import diff_items
from annotation.datasets.interchange import (
    EXPORT_FILES,
    FORMAT,
    SHA256_RULE,
    SILVER_FILE,
    SPLIT_FILES,
    canonical_line,
    format_datetime,
    item_record,
)
from annotation.models import DatasetItem, DatasetVersion

EXPORT_CHUNK = 2000
_FILE_SPLIT = {name: split for split, name in SPLIT_FILES.items()}


def dataset_versions_list():
    return DatasetVersion.objects.select_related("created_by", "parent").order_by("-number")


def dataset_version_latest_frozen() -> DatasetVersion | None:
    return DatasetVersion.objects.filter(status=DatasetVersion.Status.FROZEN).order_by("-number").first()


def dataset_export_lines(version: DatasetVersion, name: str) -> Iterator[bytes]:
    """The canonical lines of one export file, streamed from the snapshot (never from live posts)."""
    items = DatasetItem.objects.filter(version=version)
    if name == SILVER_FILE:
        items = items.filter(kind=DatasetItem.Kind.SILVER)
    elif name in _FILE_SPLIT:
        items = items.filter(kind=DatasetItem.Kind.GOLD, split=_FILE_SPLIT[name])
    else:
        raise ValueError(f"unknown export file {name!r}; one of {EXPORT_FILES}")
    rows = items.order_by("post_id").values_list(
        "external_id", "platform", "text", "posted_at", "is_beauty", "spans", "kind", "teacher_model",
        "prompt_version", "reasoning",
    )
    for ext, platform, text, posted_at, is_beauty, spans, kind, teacher_model, prompt_version, reasoning in rows.iterator(
        chunk_size=EXPORT_CHUNK
    ):
        yield canonical_line(item_record(
            external_id=ext, platform=platform, text=text, posted_at=posted_at, is_beauty=is_beauty, spans=spans,
            kind=kind, teacher_model=teacher_model, prompt_version=prompt_version, reasoning=reasoning,
        ))


def dataset_manifest(version: DatasetVersion) -> dict:
    counts = {k: v for k, v in (version.counts or {}).items() if k not in ("files", "diff_to_parent")}
    return {
        "format": FORMAT,
        "version": version.number,
        "parent": version.parent.number if version.parent_id else None,
        "sha256": version.sha256,
        "sha256_rule": SHA256_RULE,
        "files": (version.counts or {}).get("files", {}),
        "counts": counts,
        "split_ratios": version.split_ratios,
        "frozen_at": format_datetime(version.frozen_at),
        "note": version.note,
    }


def dataset_manifest_bytes(version: DatasetVersion) -> bytes:
    return (json.dumps(dataset_manifest(version), ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _diff_stream(version: DatasetVersion | None):
    if version is None:
        return
    rows = (DatasetItem.objects.filter(version=version).order_by("post_id")
            .values_list("post_id", "kind", "split", "is_beauty", "spans"))
    for post_id, kind, split, is_beauty, spans in rows.iterator(chunk_size=EXPORT_CHUNK):
        yield post_id, {"kind": kind, "split": split, "is_beauty": is_beauty, "spans": spans}


def dataset_diff(old: DatasetVersion | None, new: DatasetVersion) -> dict:
    """Posts and spans added/removed/changed from `old` to `new`, per kind and per category."""
    result = diff_items(_diff_stream(old), _diff_stream(new))
    result["from"] = old.number if old else None
    result["to"] = new.number
    return result
