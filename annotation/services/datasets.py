"""Freezing gold annotations (and valid teacher predictions as silver) into immutable dataset versions.

Freezing streams: annotations and predictions are read with `.iterator(chunk_size=…)`, items are
written with `bulk_create` one chunk at a time, the version hash is computed over the export stream.
Everything looked up per post (parent splits, posts already taken as gold) is asked per chunk, so
memory stays flat however many posts there are.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections import defaultdict
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator

from django.conf import settings
from django.db import IntegrityError, reset_queries, transaction
from django.utils import timezone

from annotation.selectors_datasets import dataset_diff, dataset_export_lines, dataset_manifest_bytes
from annotation.datasets.bio import BIO_RULE, bio_encode_batch, write_conll
from annotation.datasets.interchange import EXPORT_FILES, MANIFEST_FILE, read_jsonl, version_sha256
from annotation.datasets.splits import SPLITS, normalise_ratios, split_for
from annotation.models import Annotation, DatasetItem, DatasetVersion, Prediction, Span

log = logging.getLogger(__name__)

FREEZE_CHUNK = 1000
BIO_BATCH = 256


class DatasetError(Exception):
    pass


class FreezeInProgress(DatasetError):
    pass


class NothingToFreeze(DatasetError):
    pass


class ExportMismatch(DatasetError):
    pass


def _chunks(iterable: Iterable, size: int) -> Iterator[list]:
    it = iter(iterable)
    while chunk := list(islice(it, size)):
        yield chunk


def _gold_annotations():
    return Annotation.objects.filter(is_gold=True)


def _silver_predictions():
    return Prediction.objects.filter(source=Prediction.Source.TEACHER, status=Prediction.Status.OK).exclude(
        post__annotations__is_gold=True
    )


def _candidates_total() -> int:
    return _gold_annotations().count() + _silver_predictions().values("post_id").distinct().count()


def dataset_version_create(*, user=None, note: str = "") -> DatasetVersion:
    """A new version row in `freezing` state: number N+1, parent = the latest frozen version."""
    with transaction.atomic():
        if DatasetVersion.objects.filter(status=DatasetVersion.Status.FREEZING).exists():
            raise FreezeInProgress("A dataset version is being frozen; wait until it is done.")
        total = _candidates_total()
        if total == 0:
            raise NothingToFreeze("There is no gold annotation and no valid teacher prediction to freeze.")
        last = DatasetVersion.objects.order_by("-number").first()
        parent = DatasetVersion.objects.filter(status=DatasetVersion.Status.FROZEN).order_by("-number").first()
        try:
            with transaction.atomic():
                return DatasetVersion.objects.create(
                    number=(last.number + 1) if last else 1,
                    parent=parent,
                    created_by=user if user is not None and user.is_authenticated else None,
                    note=note.strip(),
                    split_ratios=normalise_ratios(settings.DATASET_SPLIT_RATIOS),
                    progress_total=total,
                )
        except IntegrityError as exc:  # another request took the same number a moment earlier
            raise FreezeInProgress("A dataset version is being frozen; wait until it is done.") from exc


def dataset_version_freeze_start(*, user=None, note: str = "") -> DatasetVersion:
    """Create the version and freeze it on a worker (the page polls its progress)."""
    from annotation.tasks import dataset_freeze_task

    version = dataset_version_create(user=user, note=note)
    transaction.on_commit(lambda: dataset_freeze_task.delay(version.pk))
    return version


def dataset_freeze_now(*, user=None, note: str = "") -> DatasetVersion:
    """Create and freeze in this process (management command, benchmarks, tests)."""
    return dataset_version_freeze(version=dataset_version_create(user=user, note=note))


class _Stats:
    def __init__(self) -> None:
        self.splits = {s: {"gold": 0, "silver": 0, "spans": 0, "beauty": 0, "not_beauty": 0, "beauty_unknown": 0,
                           "brand_count": {"0": 0, "1": 0, "2": 0, "3+": 0}, "categories": defaultdict(int)}
                       for s in SPLITS}
        self.silver_left_out = {"val": 0, "test": 0}
        self.silver_invalid = 0
        self.silver_skipped_gold = 0

    def add(self, split: str, kind: str, is_beauty: bool | None, spans: list[dict]) -> None:
        s = self.splits[split]
        s[kind] += 1
        s["spans"] += len(spans)
        s["beauty" if is_beauty else "beauty_unknown" if is_beauty is None else "not_beauty"] += 1
        s["brand_count"][str(len(spans)) if len(spans) < 3 else "3+"] += 1
        for sp in spans:
            s["categories"][sp.get("category") or "(none)"] += 1

    def as_dict(self) -> dict:
        splits = {k: {**v, "categories": dict(sorted(v["categories"].items()))} for k, v in self.splits.items()}
        categories: dict[str, int] = defaultdict(int)
        for v in splits.values():
            for cat, n in v["categories"].items():
                categories[cat] += n
        return {
            "gold": sum(v["gold"] for v in splits.values()),
            "silver": sum(v["silver"] for v in splits.values()),
            "spans": sum(v["spans"] for v in splits.values()),
            "categories": dict(sorted(categories.items())),
            "splits": splits,
            # Silver posts whose hash falls in val/test are left out, so evaluation never sees teacher labels.
            "silver_left_out": self.silver_left_out,
            "silver_invalid": self.silver_invalid,
            "silver_skipped_gold": self.silver_skipped_gold,
        }


def _external_id(external_id: str, content_hash: str) -> str:
    return external_id or f"bb-{content_hash[:16]}"


class _Splitter:
    """split = hash of the content hash; when the ratios changed since the parent, a post that was in the
    parent keeps the split it had there, so a test post never moves into train."""

    def __init__(self, version: DatasetVersion, ratios: dict[str, float]) -> None:
        self.ratios = ratios
        parent = version.parent
        self.parent = parent if parent is not None and normalise_ratios(
            parent.split_ratios or settings.DATASET_SPLIT_RATIOS) != ratios else None

    def splits(self, rows: list[tuple], post_index: int, hash_index: int) -> dict[int, str]:
        known = {}
        if self.parent is not None:
            known = dict(DatasetItem.objects.filter(version=self.parent, post_id__in=[r[post_index] for r in rows])
                         .values_list("post_id", "split"))
        return {r[post_index]: known.get(r[post_index]) or split_for(r[hash_index], self.ratios) for r in rows}


def _gold_chunks(version, splitter: _Splitter, stats: _Stats) -> Iterator[list[DatasetItem]]:
    rows = _gold_annotations().order_by("post_id").values_list(
        "id", "post_id", "is_beauty", "post__text", "post__content_hash", "post__external_id", "post__platform",
        "post__posted_at",
    )
    for chunk in _chunks(rows.iterator(chunk_size=FREEZE_CHUNK), FREEZE_CHUNK):
        spans_of: dict[int, list[dict]] = defaultdict(list)
        span_rows = Span.objects.filter(annotation_id__in=[r[0] for r in chunk]).order_by().values_list(
            "annotation_id", "start", "end", "text", "brand__canonical_name", "brand_text", "category__slug"
        )
        for ann_id, start, end, text, canonical, brand_text, category in span_rows:
            spans_of[ann_id].append({"start": start, "end": end, "text": text,
                                     "brand": canonical or brand_text or None, "category": category or None})
        items = []
        splits = splitter.splits(chunk, post_index=1, hash_index=4)
        for ann_id, post_id, is_beauty, text, chash, external_id, platform, posted_at in chunk:
            split = splits[post_id]
            spans = sorted(spans_of.get(ann_id, []), key=lambda s: (s["start"], s["end"]))
            items.append(DatasetItem(
                version=version, post_id=post_id, split=split, kind=DatasetItem.Kind.GOLD, text=text,
                is_beauty=is_beauty, spans=spans, external_id=_external_id(external_id, chash), platform=platform,
                posted_at=posted_at,
            ))
            stats.add(split, "gold", is_beauty, spans)
        yield items


def _valid_teacher_spans(spans: object, text: str) -> list[dict] | None:
    if not isinstance(spans, list):
        return None
    out = []
    for s in spans:
        if not isinstance(s, dict):
            return None
        start, end = s.get("start"), s.get("end")
        if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start < end <= len(text):
            return None
        if s.get("text") not in (None, text[start:end]):
            return None
        out.append({"start": start, "end": end, "text": text[start:end], "brand": s.get("brand") or None,
                    "category": s.get("category") or None})
    out.sort(key=lambda s: (s["start"], s["end"]))
    if any(b["start"] < a["end"] for a, b in zip(out, out[1:])):
        return None  # overlapping spans cannot become BIO tags
    return out


def _silver_rows() -> Iterator[tuple]:
    """The latest valid teacher prediction of each post without gold, in post order."""
    rows = _silver_predictions().order_by("post_id", "-created_at", "-id").values_list(
        "post_id", "model_version", "prompt_version", "spans", "is_beauty", "reasoning", "post__text",
        "post__content_hash", "post__external_id", "post__platform", "post__posted_at",
    )
    last_post = None
    for row in rows.iterator(chunk_size=FREEZE_CHUNK):
        if row[0] == last_post:
            continue
        last_post = row[0]
        yield row


def _silver_chunks(version, splitter: _Splitter, stats: _Stats) -> Iterator[tuple[list, int]]:
    for chunk in _chunks(_silver_rows(), FREEZE_CHUNK):
        items = []
        splits = splitter.splits(chunk, post_index=0, hash_index=7)
        # Gold that arrived between the two passes: the gold snapshot already holds the post.
        taken = set(DatasetItem.objects.filter(version=version, post_id__in=list(splits)).values_list("post_id", flat=True))
        for post_id, model, prompt, raw_spans, is_beauty, reasoning, text, chash, external_id, platform, posted_at in chunk:
            if post_id in taken:
                stats.silver_skipped_gold += 1
                continue
            split = splits[post_id]
            if split != DatasetItem.Split.TRAIN:
                stats.silver_left_out[split] += 1
                continue
            spans = _valid_teacher_spans(raw_spans, text)
            if spans is None:
                stats.silver_invalid += 1
                continue
            items.append(DatasetItem(
                version=version, post_id=post_id, split=split, kind=DatasetItem.Kind.SILVER, text=text,
                is_beauty=is_beauty, spans=spans, teacher_model=model, prompt_version=prompt, reasoning=reasoning,
                external_id=_external_id(external_id, chash), platform=platform, posted_at=posted_at,
            ))
            stats.add(split, "silver", is_beauty, spans)
        yield items, len(chunk)


def _hash_export(version: DatasetVersion) -> dict[str, dict]:
    files = {}
    for name in EXPORT_FILES:
        h, lines, size = hashlib.sha256(), 0, 0
        for line in dataset_export_lines(version, name):
            h.update(line)
            lines += 1
            size += len(line)
        files[name] = {"sha256": h.hexdigest(), "lines": lines, "bytes": size}
    return files


def _set_progress(version: DatasetVersion, done: int) -> None:
    DatasetVersion.objects.filter(pk=version.pk).update(progress_done=done, updated_at=timezone.now())
    # With DEBUG on (the embedded default) Django keeps the SQL of the last 9,000 queries, and every
    # bulk insert carries a chunk of snapshot texts: that log alone would hold ~100 MB at 100k posts.
    reset_queries()


def dataset_version_freeze(*, version: DatasetVersion) -> DatasetVersion:
    """Snapshot every gold annotation (and silver) into `version`, hash it, mark it frozen. Idempotent."""
    version.refresh_from_db()
    if version.status == DatasetVersion.Status.FROZEN:
        return version
    if version.status == DatasetVersion.Status.FAILED:
        raise DatasetError(f"v{version.number} failed ({version.error}); freeze a new version instead.")
    # Leftovers of an interrupted attempt (a worker killed mid-way, the task redelivered).
    DatasetItem.objects.filter(version=version).delete()
    version.progress_total = _candidates_total()
    version.progress_done = 0
    version.save(update_fields=["progress_total", "progress_done"])
    try:
        ratios = normalise_ratios(version.split_ratios or settings.DATASET_SPLIT_RATIOS)
        splitter = _Splitter(version, ratios)
        stats, done = _Stats(), 0
        for items in _gold_chunks(version, splitter, stats):
            DatasetItem.objects.bulk_create(items)
            done += len(items)
            _set_progress(version, done)
        for items, seen in _silver_chunks(version, splitter, stats):
            DatasetItem.objects.bulk_create(items)
            done += seen
            _set_progress(version, done)
        counts = stats.as_dict()
        if counts["gold"] + counts["silver"] == 0:
            raise NothingToFreeze("There is no gold annotation and no valid teacher prediction to freeze.")
        files = _hash_export(version)
        counts["files"] = files
        counts["diff_to_parent"] = dataset_diff(version.parent, version)
        version.refresh_from_db()
        version.counts = counts
        version.sha256 = version_sha256({name: f["sha256"] for name, f in files.items()})
        version.status = DatasetVersion.Status.FROZEN
        version.frozen_at = timezone.now()
        version.progress_done = version.progress_total = max(done, version.progress_total)
        version.split_ratios = ratios
        version.save()
    except Exception as exc:
        log.exception("dataset freeze failed", extra={"version": version.number})
        DatasetItem.objects.filter(version=version).delete()
        DatasetVersion.objects.filter(pk=version.pk).update(
            status=DatasetVersion.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        version.refresh_from_db()
        raise
    log.info("dataset frozen", extra={"version": version.number, "gold": counts["gold"], "silver": counts["silver"],
                                      "sha256": version.sha256})
    return version


def _bio_export(outdir: Path, tokenizer, tokenizer_name: str) -> dict:
    biodir = outdir / "bio"
    biodir.mkdir(exist_ok=True)
    files, totals = {}, {"posts": 0, "tokens": 0, "spans": 0, "widened": 0, "lost": 0}
    for name in EXPORT_FILES:
        target = biodir / name.replace(".jsonl", ".conll")
        with target.open("w", encoding="utf-8", newline="\n") as out:
            for batch in _chunks(read_jsonl(outdir / name), BIO_BATCH):
                examples = bio_encode_batch([r["text"] for r in batch], [r["brands"] for r in batch], tokenizer)
                for record, example in zip(batch, examples):
                    write_conll(out, record["id"], example)
                    totals["posts"] += 1
                    totals["tokens"] += len(example.tokens)
                    totals["spans"] += example.spans
                    totals["widened"] += example.widened
                    totals["lost"] += example.lost
        files[target.name] = {"sha256": _file_sha256(target), "bytes": target.stat().st_size}
    return {"tokenizer": tokenizer_name, "rule": BIO_RULE, "columns": ["token", "start", "end", "tag", "category"],
            "files": files, "stats": totals}


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dataset_version_export(*, version: DatasetVersion, outdir: Path, tokenizer=None, tokenizer_name: str = "") -> dict:
    """Write train/val/test/silver.jsonl and manifest.json (and bio/*.conll given a tokenizer) to `outdir`.

    The files are checked against the version's sha256 while they are written: an export that does
    not reproduce the frozen bytes raises ExportMismatch instead of handing out different data.
    """
    import json

    if version.status != DatasetVersion.Status.FROZEN:
        raise DatasetError(f"v{version.number} is {version.status}, not frozen")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for name in EXPORT_FILES:
        h = hashlib.sha256()
        with (outdir / name).open("wb") as f:
            for line in dataset_export_lines(version, name):
                f.write(line)
                h.update(line)
        hashes[name] = h.hexdigest()
    if version_sha256(hashes) != version.sha256:
        raise ExportMismatch(f"v{version.number} exports to {version_sha256(hashes)}, frozen as {version.sha256}")
    manifest = json.loads(dataset_manifest_bytes(version))
    if tokenizer is not None:
        if isinstance(tokenizer, (str, Path)):
            from annotation.datasets.bio import load_tokenizer

            tokenizer_name = tokenizer_name or str(tokenizer)
            tokenizer = load_tokenizer(tokenizer)
        manifest["bio"] = _bio_export(outdir, tokenizer, tokenizer_name)
    (outdir / MANIFEST_FILE).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return manifest


def dataset_version_export_dir(*, version: DatasetVersion) -> Path:
    """A verified export of `version` under DATASETS_DIR/v<N>/, written once (training reads it)."""
    from annotation.datasets.interchange import verify_directory

    target = Path(settings.DATASETS_DIR) / f"v{version.number}"
    if (target / MANIFEST_FILE).exists() and verify_directory(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".v{version.number}-", dir=target.parent))
    try:
        dataset_version_export(version=version, outdir=tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
