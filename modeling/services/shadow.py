"""Shadow release: a candidate generation labels a sample of incoming posts beside the promoted one.

Incoming = the posts the promoted student pre-labels. A post is in the sample when a hash of its content
hash falls under the share, so the sample is the same whatever the order or the worker. The candidate's
labels go to ShadowPrediction (never shown to annotators); `shadow_figures` compares both generations
against the teacher and the gold on the sampled posts as those answers arrive.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.models import Annotation, Post, Prediction
from modeling.models import ModelGeneration, ShadowPrediction, ShadowRelease

log = logging.getLogger(__name__)
Status = ModelGeneration.Status


class ShadowError(Exception):
    pass


def in_sample(content_hash: str, share: float) -> bool:
    digest = hashlib.sha256(b"shadow:" + content_hash.encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


@transaction.atomic
def shadow_start(*, candidate: ModelGeneration, sample_share: float | None = None) -> ShadowRelease:
    """Start shadowing (any active release stops: one candidate at a time)."""
    baseline = ModelGeneration.objects.filter(status=Status.PROMOTED).first()
    if baseline is None:
        raise ShadowError("No generation is promoted: there is nothing to shadow.")
    if candidate.pk == baseline.pk or candidate.status not in {Status.READY, Status.RETIRED}:
        raise ShadowError(f"gen-{candidate.number} is {candidate.status}: only a trained, not promoted generation "
                          "can shadow.")
    share = settings.SHADOW_SAMPLE_SHARE if sample_share is None else sample_share
    if not 0 < share <= 1:
        raise ShadowError("The shadow sample share is a fraction in (0, 1].")
    ShadowRelease.objects.filter(active=True).update(active=False, stopped_at=timezone.now())
    return ShadowRelease.objects.create(candidate=candidate, baseline=baseline, sample_share=share)


def shadow_stop() -> int:
    return ShadowRelease.objects.filter(active=True).update(active=False, stopped_at=timezone.now())


def active_release() -> ShadowRelease | None:
    return ShadowRelease.objects.select_related("candidate", "baseline").filter(active=True).first()


def shadow_label(*, post_ids: list[int], model_version: str) -> int:
    """Called after the promoted student labelled `post_ids` (as `model_version`): the candidate labels the
    sampled ones. Idempotent (one row per release and post). Returns how many it labelled."""
    release = active_release()
    if release is None or model_version != f"gen-{release.baseline.number}":
        return 0
    if release.candidate.status not in {Status.READY, Status.RETIRED}:  # promoted or gone: the shadow is over
        shadow_stop()
        return 0
    done = set(ShadowPrediction.objects.filter(release=release, post_id__in=post_ids).values_list("post_id", flat=True))
    posts = [p for p in Post.objects.filter(pk__in=post_ids).only("id", "text", "content_hash").order_by("pk")
             if p.pk not in done and in_sample(p.content_hash, release.sample_share)]
    if not posts:
        return 0
    from modeling.services.serving import load_artifact

    candidate = load_artifact(release.candidate.artifact_path, device=settings.TORCH_DEVICE)
    made = 0
    for post, pred in zip(posts, candidate.predict([p.text for p in posts])):
        try:
            with transaction.atomic():
                ShadowPrediction.objects.create(release=release, post=post, spans=pred["brands"],
                                                is_beauty=pred["is_beauty"])
            made += 1
        except IntegrityError:  # a redelivered chunk: the first answer stands
            pass
    return made


def _gold_rows(post_ids) -> dict[int, dict]:
    rows = {}
    for a in Annotation.objects.filter(post_id__in=post_ids, is_gold=True).prefetch_related("spans"):
        rows[a.post_id] = {"brands": [{"start": s.start, "end": s.end} for s in a.spans.all()],
                           "is_beauty": a.is_beauty}
    return rows


def shadow_figures(release: ShadowRelease) -> dict:
    """Candidate vs promoted on the sampled posts: their agreement, and span F1 against the teacher's and the
    gold answers on the posts that have them (figures grow as answers arrive)."""
    from modeling.cascade import span_set
    from modeling.metrics import evaluate

    shadow = {s.post_id: s for s in ShadowPrediction.objects.filter(release=release)}
    baseline = {p.post_id: p for p in Prediction.objects.filter(
        post_id__in=list(shadow), source=Prediction.Source.STUDENT, model_version=f"gen-{release.baseline.number}",
        status=Prediction.Status.OK)}
    both = [pid for pid in shadow if pid in baseline]
    agree = sum(span_set({"brands": shadow[pid].spans}) == span_set({"brands": baseline[pid].spans}) for pid in both)
    teacher = {p.post_id: {"brands": p.spans, "is_beauty": p.is_beauty} for p in Prediction.objects.filter(
        post_id__in=both, source=Prediction.Source.TEACHER, status=Prediction.Status.OK).order_by("created_at")}
    gold = _gold_rows(both)

    def against(reference: dict[int, dict]) -> dict:
        ids = [pid for pid in both if pid in reference]
        if not ids:
            return {"posts": 0, "candidate_span_f1": None, "promoted_span_f1": None}
        ref = [reference[pid] for pid in ids]
        cand = evaluate(ref, [{"brands": shadow[pid].spans, "is_beauty": shadow[pid].is_beauty} for pid in ids])
        base = evaluate(ref, [{"brands": baseline[pid].spans, "is_beauty": baseline[pid].is_beauty} for pid in ids])
        return {"posts": len(ids), "candidate_span_f1": round(cand["span_f1"], 4),
                "promoted_span_f1": round(base["span_f1"], 4)}

    return {"candidate": release.candidate.number, "baseline": release.baseline.number,
            "sample_share": release.sample_share, "sampled": len(shadow), "compared": len(both),
            "agree": agree, "disagree": len(both) - agree, "vs_teacher": against(teacher), "vs_gold": against(gold)}


def shadow_status() -> dict | None:
    """The active release (else the latest) and its figures, for the models page."""
    release = active_release() or ShadowRelease.objects.select_related("candidate", "baseline").first()
    if release is None:
        return None
    return {"release": release, **shadow_figures(release)}
