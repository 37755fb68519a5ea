"""Export of a generation: quantise its student, evaluate it on the generation's test split, gate it.

The quantisation itself is Django-free (modeling/export.py); this module records it on the
ModelGeneration row (export_path, export_metrics) and tells serving which export to use.

export_metrics["state"] (ExportState): queued → running → passed | failed (gate: too much span F1 lost, kept for
audit, never served) | error (the export itself broke; generation stays usable unquantised).
A generation that is `ready` is `exporting` while its export runs, so it cannot be promoted half-way.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from modeling.lifecycle import EXPORT_DONE, guard
from modeling.models import ExportState, ModelGeneration

log = logging.getLogger(__name__)
Status = ModelGeneration.Status



class ExportRefused(Exception):
    pass


def _resolve_format(generation: ModelGeneration, fmt: str | None) -> str:
    from modeling import export

    if fmt:
        if fmt not in export.FORMATS:
            raise ExportRefused(f"Unknown export format {fmt!r}: use one of {', '.join(export.FORMATS)}.")
        return fmt
    from modeling.student.config import StudentConfig

    return export.format_for(StudentConfig.from_dict(generation.config).resolved_backbone())


def generation_export_enqueue(*, generation: ModelGeneration, fmt: str | None = None, force: bool = False) -> None:
    """Queue the export on the gpu queue once the current transaction commits."""
    guard(generation, "export", ExportRefused)
    from modeling.tasks import gpu_export_generation

    pk = generation.pk
    ModelGeneration.objects.filter(pk=pk).update(export_metrics={"state": ExportState.QUEUED, "format": fmt or "",
                                                                 "queued_at": timezone.now().isoformat()})
    transaction.on_commit(lambda: gpu_export_generation.delay(pk, fmt, force))


def generation_export_after_training(*, generation: ModelGeneration) -> None:
    """The hook run when a generation has been evaluated: export it unless settings say not to."""
    if settings.EXPORT_AFTER_TRAINING and generation.status == Status.READY:
        generation_export_enqueue(generation=generation)


def _test_rows_and_calibration(generation: ModelGeneration) -> tuple[list[dict], list[str]]:
    from modeling.services.generations import dataset_examples

    train, _, test = dataset_examples(generation.dataset_version, 1.0)
    rows = [{"text": ex.text, "brands": ex.spans, "is_beauty": ex.is_beauty} for ex in test]
    # Gold first: calibration should look like the posts the model will serve, and gold is the cleanest.
    ordered = [ex.text for ex in train if ex.kind == "gold"] + [ex.text for ex in train if ex.kind != "gold"]
    return rows, ordered[: settings.EXPORT_CALIBRATION_SAMPLES]


def generation_export(*, generation_id: int, fmt: str | None = None, force: bool = False) -> dict:
    """Export, evaluate and gate one generation (idempotent: a finished export of that format returns
    its figures unless `force`). Returns export_metrics. The worker holds the generation's lease while it
    exports, so a redelivered message never exports the same folder twice at once."""
    from modeling import export
    from modeling.services.generations import GenerationLease, lease_held_elsewhere, lease_owner

    owner = lease_owner()
    with transaction.atomic():
        generation = ModelGeneration.objects.select_for_update().get(pk=generation_id)
        guard(generation, "export", ExportRefused)
        fmt = _resolve_format(generation, fmt)
        previous = generation.export_metrics or {}
        if (not force and previous.get("state") in EXPORT_DONE and previous.get("format") == fmt
                and Path(generation.export_path, export.MANIFEST).exists()):
            return previous
        if lease_held_elsewhere(generation, owner):
            # Another worker exports (or trains) this generation right now: a redelivered message leaves it
            # be; if that worker dies, its lease lapses and the sweeper sends the export again.
            return {**previous, "skipped": "another worker holds the generation's lease"}
        restore = Status.READY if generation.status in {Status.READY, Status.EXPORTING} else generation.status
        generation.status = Status.EXPORTING if restore == Status.READY else generation.status
        generation.export_metrics = {"state": ExportState.RUNNING, "format": fmt, "started_at": timezone.now().isoformat(),
                                     "resumes": previous.get("resumes", 0)}
        generation.lease_owner = owner
        generation.lease_until = timezone.now() + timedelta(seconds=settings.GPU_LEASE_SECONDS)
        generation.save(update_fields=["status", "export_metrics", "lease_owner", "lease_until"])

    with GenerationLease(generation_id, owner):
        return _export_leased(generation, fmt, restore, owner)


def _export_leased(generation: ModelGeneration, fmt: str, restore: str, owner: str) -> dict:
    import torch

    from modeling import export
    from modeling.student.predict import StudentPredictor

    generation_id = generation.pk
    torch.set_num_threads(max(1, int(settings.TORCH_THREADS)))
    out_dir = Path(generation.artifact_path) / f"export-{fmt}"
    metrics: dict
    try:
        rows, calibration = _test_rows_and_calibration(generation)
        manifest = export.export_student(generation.artifact_path, out_dir, fmt=fmt, calibration_texts=calibration)
        metrics = generation_export_evaluate(generation=generation, export_dir=out_dir, rows=rows,
                                             reference=StudentPredictor.load(generation.artifact_path))
        metrics = {**manifest, **metrics}
    except Exception as exc:
        log.exception("gen-%s export (%s) failed", generation.number, fmt)
        metrics = {"state": ExportState.ERROR, "format": fmt, "passed": False, "error": f"{type(exc).__name__}: {exc}"}
    metrics["finished_at"] = timezone.now().isoformat()
    with transaction.atomic():
        row = ModelGeneration.objects.select_for_update().get(pk=generation_id)
        row.export_path = str(out_dir) if metrics["state"] != ExportState.ERROR else ""
        row.export_metrics = metrics
        if row.status == Status.EXPORTING:
            row.status = restore
        if row.lease_owner == owner:  # let go in the same write: never seen ready again but still leased
            row.lease_owner, row.lease_until = "", None
        row.save(update_fields=["export_path", "export_metrics", "status", "lease_owner", "lease_until"])
    if out_dir.exists():  # the figures travel with the export, for whoever audits it without the database
        (out_dir / "evaluation.json").write_text(json.dumps(metrics, indent=1))
    log.info("gen-%s export %s: %s", generation.number, fmt, metrics["state"])
    return metrics


def generation_export_evaluate(*, generation: ModelGeneration, export_dir: Path, rows: list[dict],
                               reference) -> dict:
    """The export against its own unquantised model on the test rows; `state` says whether it may serve."""
    from modeling import export

    exported = export.load_exported(export_dir)
    figures = export.evaluate_export(reference, exported, rows, max_drop=settings.EXPORT_MAX_SPAN_F1_DROP)
    passed = figures["passed"] and bool(rows)
    reason = "" if rows else "the dataset version has no test posts: nothing to judge the export on"
    if rows and not figures["passed"]:
        reason = (f"span F1 fell by {figures['span_f1_drop'] * 100:.1f} points "
                  f"(more than {settings.EXPORT_MAX_SPAN_F1_DROP * 100:.1f})")
    return {**figures, "passed": passed, "state": ExportState.PASSED if passed else ExportState.FAILED, "reason": reason,
            "dataset_version": generation.dataset_version.number}


# -- serving --------------------------------------------------------------------------------------
_lock = threading.Lock()
_loaded: dict[str, object] = {}


def serving_export_dir(generation: ModelGeneration) -> Path | None:
    """The export serving should use: only one that passed its gate and is still on disk."""
    from modeling.export import MANIFEST

    metrics = generation.export_metrics or {}
    if metrics.get("state") != ExportState.PASSED or not generation.export_path:
        return None
    path = Path(generation.export_path)
    return path if (path / MANIFEST).exists() else None


def serving_predictor(generation: ModelGeneration):
    """A StudentPredictor over the generation's passed export (loaded once per process), or None."""
    from modeling.export import MANIFEST, load_exported

    path = serving_export_dir(generation)
    if path is None:
        return None
    key = f"{path.resolve()}:{(path / MANIFEST).stat().st_mtime_ns}"
    with _lock:
        if key not in _loaded:
            _loaded[key] = load_exported(path, device=settings.TORCH_DEVICE)
        return _loaded[key]
