"""Model generations: create, train (on the gpu queue), evaluate side by side, promote/retire/cancel/resume.

All ORM writes for ModelGeneration live here; the student itself (modeling.student) never touches Django.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import shutil
import statistics
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from annotation.models import DatasetItem, DatasetVersion, Post, Prediction
from modeling.lifecycle import FINISHED, guard
from modeling.models import ModelGeneration
from modeling.speed import measure_speed

log = logging.getLogger(__name__)
Status = ModelGeneration.Status

LOSS_HISTORY_MAX = 400
MAX_EPOCHS = 100


class GenerationError(Exception):
    """An illegal transition or request on a generation."""


class PromotionRefused(GenerationError):
    pass


def generation_dir(number: int) -> Path:
    return Path(settings.MODELS_DIR) / f"gen-{number}"


def _default_backbone() -> str:
    return getattr(settings, "BEAUTYBRAIN_BACKBONE", "") or ""


# -- create / enqueue ---------------------------------------------------------------------------
@transaction.atomic
def generation_create(*, dataset_version: DatasetVersion, base_model: str = "", epochs: float | None = None,
                      config: dict | None = None, user=None, enqueue: bool = True) -> ModelGeneration:
    if dataset_version.status != DatasetVersion.Status.FROZEN:
        raise GenerationError(f"{dataset_version} is not frozen: only a frozen version can be trained on.")
    from modeling.student.config import StudentConfig

    cfg = StudentConfig.from_dict(config or {})
    cfg.backbone = base_model or cfg.backbone or _default_backbone()
    if epochs is not None:
        if not math.isfinite(epochs) or not 0 < epochs <= MAX_EPOCHS:
            raise GenerationError(f"Epochs must be a number above 0 and at most {MAX_EPOCHS}, got {epochs}.")
        cfg.epochs = float(epochs)
    number = (ModelGeneration.objects.select_for_update().aggregate(m=Max("number"))["m"] or 0) + 1
    generation = ModelGeneration.objects.create(
        number=number, base_model=cfg.resolved_backbone(), dataset_version=dataset_version,
        config=cfg.to_dict(), created_by=user, artifact_path=str(generation_dir(number)))
    if enqueue:
        generation_enqueue(generation=generation)
    return generation


def generation_enqueue(*, generation: ModelGeneration) -> None:
    from modeling.tasks import gpu_train_generation

    pk = generation.pk

    def send():
        result = gpu_train_generation.delay(pk)
        ModelGeneration.objects.filter(pk=pk).update(task_id=result.id or "")

    transaction.on_commit(send)


def generation_resume(*, generation: ModelGeneration) -> ModelGeneration:
    """Re-enqueue a generation whose worker died (a stale 'training' row) or that failed/was cancelled:
    training picks up at its last checkpoint."""
    with transaction.atomic():
        generation = ModelGeneration.objects.select_for_update().get(pk=generation.pk)
        guard(generation, "resume", GenerationError)
        generation.status = Status.QUEUED
        generation.cancel_requested = False
        generation.error = ""
        generation.save(update_fields=["status", "cancel_requested", "error"])
        generation_enqueue(generation=generation)
    return generation


def generation_cancel(*, generation: ModelGeneration) -> ModelGeneration:
    """A queued generation is cancelled at once; a training one at its next step (the task checks)."""
    with transaction.atomic():
        generation = ModelGeneration.objects.select_for_update().get(pk=generation.pk)
        guard(generation, "cancel", GenerationError)
        if generation.status == Status.QUEUED:
            generation.status = Status.CANCELLED
            generation.finished_at = timezone.now()
            generation.cancel_requested = True
            generation.save(update_fields=["status", "finished_at", "cancel_requested"])
        else:  # training or evaluating: the task stops at its next step
            generation.cancel_requested = True
            generation.save(update_fields=["cancel_requested"])
    return generation


def generation_retire(*, generation: ModelGeneration, user=None) -> ModelGeneration:
    with transaction.atomic():
        generation = ModelGeneration.objects.select_for_update().get(pk=generation.pk)
        guard(generation, "retire", GenerationError)
        generation.status = Status.RETIRED
        generation.save(update_fields=["status"])
    log.info("gen-%s retired by %s", generation.number, user)
    return generation


def generation_promote(*, generation: ModelGeneration, user=None, force: bool = False) -> ModelGeneration:
    """Promote when its test span F1 beats the promoted generation's; `force` (admins) overrides, logged."""
    with transaction.atomic():
        generation = ModelGeneration.objects.select_for_update().get(pk=generation.pk)
        guard(generation, "promote", GenerationError)
        current = ModelGeneration.objects.select_for_update().filter(status=Status.PROMOTED).first()
        mine = _span_f1(generation)
        note = f"span F1 {mine:.4f}"
        if current is not None:
            theirs = _span_f1(current)
            note += f" vs gen-{current.number} {theirs:.4f}"
            if mine <= theirs and not force:
                raise PromotionRefused(f"gen-{generation.number} does not beat gen-{current.number} on span F1 "
                                       f"({mine:.4f} ≤ {theirs:.4f}); an admin may force it.")
            current.status = Status.RETIRED
            current.save(update_fields=["status"])
        if force:
            note = f"FORCED by {user}: {note}"
        generation.status = Status.PROMOTED
        generation.promoted_at = timezone.now()
        generation.promotion_note = note
        generation.save(update_fields=["status", "promoted_at", "promotion_note"])
    log.warning("gen-%s promoted: %s", generation.number, note) if force else log.info(
        "gen-%s promoted: %s", generation.number, note)
    return generation


def _span_f1(generation: ModelGeneration) -> float:
    return float(((generation.metrics or {}).get("student") or {}).get("span_f1") or 0.0)


# -- data ---------------------------------------------------------------------------------------
def dataset_examples(version: DatasetVersion, silver_weight: float):
    """(train, val, test) Examples of a frozen version: train = gold train + silver; test is only evaluated."""
    from modeling.student.text import Example

    train, val, test = [], [], []
    items = DatasetItem.objects.filter(version=version).order_by("id").values_list(
        "post_id", "external_id", "text", "spans", "is_beauty", "split", "kind", "reasoning", "platform")
    for post_id, external_id, text, spans, is_beauty, split, kind, reasoning, platform in items.iterator(
            chunk_size=2000):
        ex = Example(id=str(external_id or post_id), text=text, spans=[dict(s) for s in spans or []],
                     is_beauty=is_beauty, kind=kind, weight=silver_weight if kind == "silver" else 1.0,
                     reasoning=reasoning or "", platform=platform or "")
        ex.post_id = post_id
        if kind == DatasetItem.Kind.SILVER:
            train.append(ex)
        elif split == DatasetItem.Split.TRAIN:
            train.append(ex)
        elif split == DatasetItem.Split.VAL:
            val.append(ex)
        else:
            test.append(ex)
    return train, val, test


def _student_index():
    from kb.index import get_index

    return get_index()


# -- training (called by the gpu task) -----------------------------------------------------------
LEASED = "leased"  # generation_train's answer when another live worker holds the generation


def lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_held_elsewhere(generation: ModelGeneration, owner: str) -> bool:
    return bool(generation.lease_owner and generation.lease_owner != owner and generation.lease_until
                and generation.lease_until > timezone.now())


class GenerationLease:
    """Holds `lease_until` a lease length ahead while the work runs (a heartbeat thread), and lets go
    at the end. A worker that dies stops beating: the lease lapses and a redelivered message takes over."""

    def __init__(self, generation_id: int, owner: str):
        self.generation_id, self.owner = generation_id, owner
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"lease-gen{generation_id}")

    def _renew(self) -> None:
        until = timezone.now() + timedelta(seconds=settings.GPU_LEASE_SECONDS)
        ModelGeneration.objects.filter(pk=self.generation_id, lease_owner=self.owner).update(lease_until=until)

    def _beat(self) -> None:
        from django.db import connection as thread_connection

        try:
            while not self._stop.wait(max(1.0, settings.GPU_LEASE_SECONDS / 4)):
                try:
                    self._renew()
                except Exception:  # noqa: BLE001 - a missed beat is retried; the lease is 4 beats long
                    log.warning("gen lease renewal failed", exc_info=True)
        finally:
            thread_connection.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        ModelGeneration.objects.filter(pk=self.generation_id, lease_owner=self.owner).update(lease_owner="",
                                                                                           lease_until=None)
        return False


def generation_train(*, generation_id: int) -> str:
    """Idempotent: a finished generation returns at once; a run resumes from its last checkpoint; a
    generation another live worker is training (its lease is fresh) is left alone (LEASED)."""
    owner = lease_owner()
    with transaction.atomic():
        generation = ModelGeneration.objects.select_for_update().get(pk=generation_id)
        if generation.status in FINISHED:
            return generation.status
        if lease_held_elsewhere(generation, owner):
            return LEASED
        if generation.cancel_requested:
            _finish(generation, Status.CANCELLED)
            return Status.CANCELLED
        generation.status = Status.TRAINING
        generation.started_at = generation.started_at or timezone.now()
        generation.error = ""
        generation.lease_owner = owner
        generation.lease_until = timezone.now() + timedelta(seconds=settings.GPU_LEASE_SECONDS)
        generation.save(update_fields=["status", "started_at", "error", "lease_owner", "lease_until"])
    with GenerationLease(generation_id, owner):
        return _generation_train_leased(generation)


def _generation_train_leased(generation: ModelGeneration) -> str:
    import torch

    from modeling.student.config import StudentConfig
    from modeling.student.train import Cancelled, train_student

    generation_id = generation.pk
    cfg = StudentConfig.from_dict(generation.config)
    cfg.device = settings.TORCH_DEVICE
    cfg.threads = int(settings.TORCH_THREADS)
    torch.set_num_threads(max(1, cfg.threads))
    out_dir = generation_dir(generation.number)
    state = {"last_save": 0.0}

    def on_progress(p):
        now = time.monotonic()
        if p.step != p.total_steps and now - state["last_save"] < 1.0 and not p.val:
            return
        state["last_save"] = now
        fields = {"stage": p.stage, "step": p.step, "total_steps": p.total_steps,
                  "progress": round(p.step / max(1, p.total_steps), 4), "eta_seconds": round(p.eta_seconds or 0, 1)}
        if p.loss is not None:
            row = ModelGeneration.objects.only("loss_history").get(pk=generation_id)
            history = list(row.loss_history or [])
            if not history or history[-1].get("step") != p.step:
                history.append({"step": p.step, "loss": p.loss, "stage": p.stage})
            fields["loss_history"] = history[-LOSS_HISTORY_MAX:]
        ModelGeneration.objects.filter(pk=generation_id).update(**fields)

    def should_cancel() -> bool:
        return ModelGeneration.objects.filter(pk=generation_id, cancel_requested=True).exists()

    try:
        train, val, test = dataset_examples(generation.dataset_version, cfg.silver_weight)
        if not train:
            raise GenerationError(f"{generation.dataset_version} has no training items.")
        summary = train_student(cfg, train, val, _student_index(), out_dir, on_progress=on_progress,
                                should_cancel=should_cancel, log=lambda m: log.info("gen-%s %s", generation.number, m))
        ModelGeneration.objects.filter(pk=generation_id).update(
            status=Status.EVALUATING, stage="evaluate", progress=1.0, eta_seconds=0,
            loss_history=[{"step": h["step"], "loss": h["loss"], "stage": h["stage"]} for h in summary["history"]])
        generation.refresh_from_db()
        metrics = generation_evaluate(generation=generation, test=test)
        metrics["training"] = {k: summary[k] for k in ("steps", "total_steps", "best_val", "stopped_early",
                                                       "train_seconds", "lexicon", "decoding", "val_posts")}
        _write_manifest(generation, out_dir, metrics)
        (out_dir / "checkpoint.pt").unlink(missing_ok=True)
        ModelGeneration.objects.filter(pk=generation_id).update(metrics=metrics)
        _finish(ModelGeneration.objects.get(pk=generation_id), Status.READY)
        from modeling.services.export import generation_export_after_training

        generation_export_after_training(generation=ModelGeneration.objects.get(pk=generation_id))
        return Status.READY
    except Cancelled:
        _finish(ModelGeneration.objects.get(pk=generation_id), Status.CANCELLED)
        return Status.CANCELLED
    except Exception as exc:
        log.exception("gen-%s failed", generation.number)
        row = ModelGeneration.objects.get(pk=generation_id)
        row.error = f"{type(exc).__name__}: {exc}"
        row.save(update_fields=["error"])
        _finish(row, Status.FAILED)
        return Status.FAILED


def _finish(generation: ModelGeneration, status: str) -> None:
    """The run's last write lets go of the lease with it: a generation is never seen finished but leased, and
    the export it enqueues is not turned away as "another worker holds the lease" (the heartbeat, which
    renews only its owner's lease, then has nothing to renew)."""
    generation.status = status
    generation.finished_at = timezone.now()
    generation.lease_owner, generation.lease_until = "", None
    generation.save(update_fields=["status", "finished_at", "lease_owner", "lease_until"])


def _write_manifest(generation: ModelGeneration, out_dir: Path, metrics: dict) -> None:
    version = generation.dataset_version
    manifest = {"generation": generation.number, "base_model": generation.base_model,
                "dataset_version": version.number, "dataset_sha256": version.sha256,
                "created_at": timezone.now().isoformat(), "metrics": metrics.get("student"),
                "files": sorted(p.name for p in out_dir.iterdir())}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))


# -- evaluation ---------------------------------------------------------------------------------
def _cost_per_1k_compute(throughput: float | None) -> float | None:
    if not throughput:
        return None
    return round(1000 / throughput / 3600 * settings.STUDENT_HOURLY_PRICE_USD, 6)


def generation_evaluate(*, generation: ModelGeneration, test=None) -> dict:
    """This generation, the promoted one, the gazetteer and the teacher's stored predictions on the
    test split of the generation's dataset version, with cost per 1,000 posts."""
    from kb.linking import normalize
    from modeling.metrics import evaluate, span_prf_by_group, unseen_brand_scores
    from modeling.predictors import GazetteerPredictor
    from modeling.student.predict import StudentPredictor

    if test is None:
        _, _, test = dataset_examples(generation.dataset_version, 1.0)
    gold = [{"text": ex.text, "brands": ex.spans, "is_beauty": ex.is_beauty} for ex in test]
    texts = [ex.text for ex in test]
    out: dict = {"test_posts": len(test), "dataset_version": generation.dataset_version.number}

    platforms = [ex.platform for ex in test]
    student = StudentPredictor.load(generation.artifact_path, device=settings.TORCH_DEVICE)
    known = student.known_keys()  # every row is scored on the mentions *this* generation was not told about

    def score(predictor, with_counts=False) -> dict:
        preds = predictor.predict(texts)
        figures = evaluate(gold, preds)
        figures["per_platform"] = {k: _rounded(v) for k, v in span_prf_by_group(gold, preds, platforms).items()}
        figures.update(unseen_brand_scores(gold, preds, known, normalize))
        if with_counts:
            from modeling.metrics import brand_count_accuracy

            figures["count_head_accuracy"] = brand_count_accuracy(gold, preds, [p["brand_count_head"] for p in preds])
        figures.update(measure_speed(predictor.predict, texts))
        figures["cost_per_1k_usd"] = _cost_per_1k_compute(figures["throughput_posts_s"])
        return _rounded(figures)

    out["student"] = score(student, with_counts=True)
    promoted = ModelGeneration.objects.filter(status=Status.PROMOTED).exclude(pk=generation.pk).first()
    if promoted is not None and Path(promoted.artifact_path, "adapter").exists():
        out["promoted"] = {"generation": promoted.number,
                           **score(StudentPredictor.load(promoted.artifact_path, device=settings.TORCH_DEVICE),
                                   with_counts=True)}
    gazetteer = score(GazetteerPredictor())
    gazetteer["cost_per_1k_usd"] = _cost_per_1k_compute(gazetteer["throughput_posts_s"])
    out["gazetteer"] = gazetteer
    out["teacher"] = _teacher_figures(test, gold)
    return out


def _teacher_figures(test, gold) -> dict:
    """The teacher's stored predictions on the same posts (none is made here: that would cost money)."""
    from modeling.metrics import evaluate

    post_ids = [getattr(ex, "post_id", None) for ex in test]
    preds = {p.post_id: p for p in Prediction.objects.filter(
        post_id__in=[i for i in post_ids if i], source=Prediction.Source.TEACHER).order_by("post_id", "-created_at")}
    if not preds:
        return {"posts_with_prediction": 0}
    rows, golds, costs, lat = [], [], [], []
    tokens_in = tokens_out = 0
    for g, pid in zip(gold, post_ids):
        pred = preds.get(pid)
        if pred is None:
            continue
        ok = pred.status == Prediction.Status.OK
        rows.append({"brands": pred.spans if ok else [], "is_beauty": pred.is_beauty})
        golds.append(g)
        tokens_in += pred.tokens_in
        tokens_out += pred.tokens_out
        if pred.latency_ms:
            lat.append(pred.latency_ms)
    figures = evaluate(golds, rows)
    n = len(rows)
    cost = (tokens_in * settings.GEMINI_PRICE_IN_PER_M + tokens_out * settings.GEMINI_PRICE_OUT_PER_M) / 1e6
    figures.update(posts_with_prediction=n, tokens_in=tokens_in, tokens_out=tokens_out,
                   cost_per_1k_usd=round(cost / n * 1000, 6) if n else None,
                   latency_ms_p50=round(statistics.median(lat), 1) if lat else None)
    return _rounded(figures)


def _rounded(d: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


def generation_delete_artifacts(*, generation: ModelGeneration) -> None:
    shutil.rmtree(generation_dir(generation.number), ignore_errors=True)
