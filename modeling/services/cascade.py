"""Cascade pre-labelling through Django: calibrate a generation on its val split, pre-label posts with the
promoted student and send the least sure share to the teacher, predict files the same way.

The routing rule (modeling.cascade) is Django-free; this module finds the data, the teacher and the
budget. Teacher answers of the cascade are ordinary teacher Predictions (claimed, budget-checked, never
paid twice), so the work queue's disagreement priority puts teacher/student disagreements first.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db.models import Avg

from annotation.models import Post, Prediction
from modeling import cascade
from modeling.models import ModelGeneration

log = logging.getLogger(__name__)
CASCADE_FILE = "cascade.json"


def _student(generation: ModelGeneration):
    from modeling.services.serving import load_artifact

    return load_artifact(generation.artifact_path, device=settings.TORCH_DEVICE)


def _teacher_cost_per_post() -> float | None:
    avg = Prediction.objects.filter(source=Prediction.Source.TEACHER, cost_usd__gt=0).aggregate(a=Avg("cost_usd"))["a"]
    return float(avg) if avg is not None else None


def cascade_calibrate(*, generation: ModelGeneration) -> dict:
    """Fit P(error) on the generation's val split and measure the dial there (teacher = its stored answers,
    no new call is paid); saved beside the artifact and in metrics["cascade"]."""
    from modeling.services.generations import dataset_examples
    _, val, _ = dataset_examples(generation.dataset_version, 1.0)
    student = _student(generation)
    texts = [ex.text for ex in val]
    gold = [{"text": ex.text, "brands": ex.spans, "is_beauty": ex.is_beauty} for ex in val]
    preds = student.predict(texts) if texts else []
    X = cascade.post_features(student, texts, preds) if texts else []
    errors = [cascade.any_error(p, g) for p, g in zip(preds, gold)]
    calibrator = cascade.Calibrator().fit(X, errors)
    p_error = calibrator.p_error(X)
    stored = {p.post_id: p for p in Prediction.objects.filter(
        post_id__in=[getattr(ex, "post_id", None) for ex in val], source=Prediction.Source.TEACHER,
        status=Prediction.Status.OK).order_by("post_id", "created_at")}
    teacher = [{"brands": stored[ex.post_id].spans, "is_beauty": stored[ex.post_id].is_beauty}
               if getattr(ex, "post_id", None) in stored else None for ex in val]
    per_post = _teacher_cost_per_post()
    student_1k = float(((generation.metrics or {}).get("student") or {}).get("cost_per_1k_usd") or 0.0)
    teacher_1k = per_post * 1000 if per_post is not None else float(
        ((generation.metrics or {}).get("teacher") or {}).get("cost_per_1k_usd") or 0.0)
    rows = cascade.dial(gold, preds, teacher, p_error, student_cost_per_1k=student_1k, teacher_cost_per_1k=teacher_1k)
    figures = {"val_posts": len(val), "val_errors": sum(errors), "val_posts_with_teacher": sum(t is not None for t in teacher),
               "calibration": cascade.calibration_figures(p_error, errors), "dial": rows,
               "gap_closed_at_20": cascade.gap_closed(rows, 0.2), "calibrator": calibrator.to_dict()}
    Path(generation.artifact_path, CASCADE_FILE).write_text(json.dumps(figures, indent=1))
    metrics = dict(ModelGeneration.objects.get(pk=generation.pk).metrics or {})
    metrics["cascade"] = {k: v for k, v in figures.items() if k != "calibrator"}
    ModelGeneration.objects.filter(pk=generation.pk).update(metrics=metrics)
    return figures


def cascade_calibrator(generation: ModelGeneration) -> cascade.Calibrator:
    path = Path(generation.artifact_path, CASCADE_FILE)
    if not path.exists():
        cascade_calibrate(generation=generation)
    return cascade.Calibrator.from_dict(json.loads(path.read_text())["calibrator"])


def cascade_p_error(generation: ModelGeneration, texts: list[str]) -> tuple[list[dict], list[float]]:
    student = _student(generation)
    preds = student.predict(texts)
    return preds, cascade_calibrator(generation).p_error(cascade.post_features(student, texts, preds))


def _budget_posts() -> int | None:
    """How many more teacher calls the budget pays for, at the average cost so far (None: unknown yet)."""
    from modeling.services.prelabel import teacher_spent_usd

    per_post = _teacher_cost_per_post()
    if not per_post:
        return None
    left = Decimal(str(settings.TEACHER_BUDGET_USD)) - teacher_spent_usd()
    return max(0, int(float(left) / per_post))


def cascade_prelabel(*, share: float, posts=None, only_unlabelled: bool = False, limit: int | None = None,
                     sync: bool = False, user=None) -> dict:
    """The promoted student labels every selected post; the least sure `share` of them (within the budget)
    also go to the teacher. Returns {"student": run, "teacher": run or None, "routed": [post ids]}."""
    from modeling.services.prelabel import SourceUnavailable, promoted_generation, prelabel_run_start

    generation = promoted_generation()
    qs = Post.objects.all() if posts is None else Post.objects.filter(pk__in=[p.pk for p in posts])
    if only_unlabelled:
        qs = qs.filter(annotations__isnull=True)
    selected = list(qs.order_by("pk").distinct()[:limit] if limit else qs.order_by("pk").distinct())
    # The student's labels are stored here and now: the routing below needs its outputs for every post.
    student_run = prelabel_run_start(source="student", posts=selected, sync=True, user=user)
    _, p_error = cascade_p_error(generation, [p.text for p in selected]) if selected else ([], [])
    chosen = [selected[i] for i in cascade.route(p_error, share, _budget_posts())]
    teacher_run = None
    if chosen:
        try:
            teacher_run = prelabel_run_start(source="teacher", posts=chosen, sync=sync, user=user)
        except SourceUnavailable as exc:
            log.warning("cascade: the teacher is unavailable, the student's labels stand: %s", exc)
    log.info("cascade: %s posts labelled by gen-%s, %s routed to the teacher (share %.2f)",
             len(selected), generation.number, len(chosen), share)
    return {"student": student_run, "teacher": teacher_run, "routed": [p.pk for p in chosen],
            "posts": len(selected)}


def cascade_predict_texts(*, texts: list[str], share: float) -> tuple[list[dict], list[int]]:
    """Interchange predictions for texts (the `predict --model cascade` command): teacher answers for the
    least sure `share`, the promoted student's elsewhere. Returns (rows, indexes sent to the teacher)."""
    from modeling.services.prelabel import BudgetExhausted, promoted_generation, teacher_budget_check, teacher_spans
    from modeling.services.teacher import teacher_client

    generation = promoted_generation()
    preds, p_error = cascade_p_error(generation, texts)
    chosen = cascade.route(p_error, share, _budget_posts())
    client = teacher_client()
    spent = Decimal(0)
    answers: dict[int, dict] = {}
    for i in chosen:
        try:
            teacher_budget_check(spent + _spent())
        except BudgetExhausted:
            break
        reply = client.label(texts[i])
        spent += client.config.cost(reply.tokens_in, reply.tokens_out)
        if reply.status == "ok":
            try:
                answers[i] = {"brands": teacher_spans(texts[i], reply.answer["mentions"]),
                              "is_beauty": reply.answer["is_beauty"], "source": "teacher"}
            except ValueError:  # an unalignable answer is never a label: the student's stands
                pass
    rows = cascade.combine([{**p, "source": "student"} for p in preds], answers, chosen)
    return rows, chosen


def _spent() -> Decimal:
    from modeling.services.prelabel import teacher_spent_usd

    return teacher_spent_usd()
