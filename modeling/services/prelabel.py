"""Pre-labelling: one service for every source (teacher, gazetteer, student), sync or through Celery.

A source is a `Source`: its `model_version`/`prompt_version` (with the post, the unique key of a
Prediction) and `predict_batch(posts) -> list[dict]` of Prediction fields. The teacher is paid per
call, so it claims each post before calling (a second worker on the same post backs off) and
checks the budget before every call. `student` is unavailable until a generation is promoted; the
student plugs in through `modeling.services.serving.predict_posts(generation, posts)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Callable, Iterable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.db.models.functions import Least
from django.utils import timezone

from annotation.models import Post, Prediction
from modeling.models import ModelGeneration, PrelabelRun


SOURCES = ("teacher", "gazetteer", "student")
CHUNK_SIZES = {"teacher": 4, "gazetteer": 200, "student": 64}
GAZETTEER_VERSION = "gazetteer-v2"
CLAIM_REASON = "in progress: claimed by a worker"
# A claim older than this is from a worker that died mid-call: the post may be taken again.
CLAIM_TTL = timedelta(minutes=10)


class SourceUnavailable(RuntimeError):
    """This source cannot label now (student: no promoted generation; teacher: not configured)."""


class BudgetExhausted(RuntimeError):
    pass


@dataclass
class Source:
    name: str
    model_version: str
    prompt_version: str
    predict_batch: Callable[[list[Post]], list[dict]]
    claims_posts: bool = False  # paid per call: claim before calling, never pay twice


# -- sources --------------------------------------------------------------------------------------

def get_source(name: str) -> Source:
    if name == "gazetteer":
        return Source("gazetteer", GAZETTEER_VERSION, "", gazetteer_predict_batch)
    if name == "teacher":
        from modeling.services.teacher import teacher_config
        from modeling.teacher.client import PROMPT_VERSION, TeacherUnavailable

        try:
            config = teacher_config()
        except TeacherUnavailable as exc:
            raise SourceUnavailable(str(exc)) from exc
        return Source("teacher", config.model, PROMPT_VERSION, teacher_predict_batch, claims_posts=True)
    if name == "student":
        generation = promoted_generation()
        return Source("student", f"gen-{generation.number}", "", student_predict_batch)
    raise SourceUnavailable(f"Unknown source {name!r}; choose one of {', '.join(SOURCES)}.")


def promoted_generation() -> ModelGeneration:
    generation = ModelGeneration.objects.filter(status=ModelGeneration.Status.PROMOTED).first()
    if generation is None:
        raise SourceUnavailable(
            "The student source is unavailable: no model generation has been promoted yet. "
            "Train one, evaluate it and promote it (Models page), or pre-label with the teacher or the gazetteer."
        )
    return generation


def gazetteer_predict_batch(posts: list[Post]) -> list[dict]:
    from modeling.predictors import gazetteer_predict_texts

    out = []
    for post, pred in zip(posts, gazetteer_predict_texts([p.text for p in posts])):
        spans = pred["brands"]
        out.append({"spans": spans, "is_beauty": pred["is_beauty"], "brand_count": len(spans),
                    "confidence": 1.0 if spans else None, "status": Prediction.Status.OK})
    return out


def student_predict_batch(posts: list[Post]) -> list[dict]:
    """The hook for the student model: Prediction fields per post from the promoted generation."""
    generation = promoted_generation()
    try:
        from modeling.services.serving import predict_posts
    except ImportError as exc:
        raise SourceUnavailable(
            f"gen-{generation.number} is promoted, but student inference is not installed "
            f"(modeling.services.serving): {exc}"
        ) from exc
    return predict_posts(generation, posts)


def teacher_predict_batch(posts: list[Post]) -> list[dict]:
    return [teacher_predict_one(p) for p in posts]


def teacher_predict_one(post: Post) -> dict:
    """One paid call (after the shared rate limit), aligned and linked; Prediction fields."""
    from modeling.services.teacher import rate_limiter, teacher_client

    client = teacher_client()
    rate_limiter().acquire()
    reply = client.label(post.text)
    fields = {
        "status": reply.status, "status_reason": reply.reason, "raw_response": reply.raw,
        "tokens_in": reply.tokens_in, "tokens_out": reply.tokens_out,
        "cost_usd": client.config.cost(reply.tokens_in, reply.tokens_out),
        "latency_ms": reply.latency_ms, "attempts": max(1, reply.attempts),
        "spans": [], "is_beauty": None, "brand_count": None, "reasoning": "",
    }
    if reply.status != "ok":
        return fields
    answer = reply.answer
    fields["reasoning"] = answer.get("reasoning", "")
    try:
        fields["spans"] = teacher_spans(post.text, answer["mentions"])
    except ValueError as exc:
        fields.update(status=Prediction.Status.INVALID, status_reason=f"unaligned mention: {exc}")
        return fields
    fields.update(is_beauty=answer["is_beauty"], brand_count=len(fields["spans"]))
    return fields


def teacher_spans(text: str, mentions: list[dict]) -> list[dict]:
    """Aligned spans with KB links; a brand the KB does not know stays an unlinked mention."""
    from kb.index import get_index
    from modeling.teacher.align import align_mentions

    aligned = align_mentions(text, [m["text"] for m in mentions], [m["brand"] for m in mentions])
    index = get_index()
    spans = []
    for m, a in zip(mentions, aligned):
        link = index.resolve(a.text, context=text, hint=m["brand"])
        entry = link.brand
        if entry is None:
            # The teacher named a KB brand by a nickname the KB lacks (LRP): its canonical name decides.
            entry = index.by_canonical.get(_normalize(m["brand"]))
        spans.append({
            "start": a.start, "end": a.end, "text": a.text,
            "brand": entry.canonical_name if entry else m["brand"], "brand_id": entry.brand_id if entry else None,
            "category": m["category"], "confidence": None,
        })
    return sorted(spans, key=lambda s: s["start"])


def _normalize(text: str) -> str:
    from kb.linking import normalize

    return normalize(text or "")


# -- budget ---------------------------------------------------------------------------------------

def teacher_spent_usd() -> Decimal:
    return Prediction.objects.filter(source=Prediction.Source.TEACHER).aggregate(s=Sum("cost_usd"))["s"] or Decimal(0)


def teacher_budget_check(spent: Decimal | None = None) -> None:
    budget = Decimal(str(settings.TEACHER_BUDGET_USD))
    spent = teacher_spent_usd() if spent is None else spent
    if spent >= budget:
        raise BudgetExhausted(
            f"Teacher budget spent: ${spent:.4f} of TEACHER_BUDGET_USD=${budget:.2f}. Teacher calls stopped; "
            "posts not labelled stay unlabelled. Raise TEACHER_BUDGET_USD and run prelabel again to resume "
            "(labelled posts are never paid twice)."
        )


# -- runs -----------------------------------------------------------------------------------------

def prelabel_candidates(
    *, source: Source, posts: Iterable[Post] | None = None, only_unlabelled: bool = False, limit: int | None = None
) -> list[int]:
    """Ids of posts this source has no final prediction for (error predictions are retried)."""
    qs = Post.objects.all() if posts is None else Post.objects.filter(pk__in=[p.pk for p in posts])
    finished = Prediction.objects.filter(
        source=source.name, model_version=source.model_version, prompt_version=source.prompt_version
    ).exclude(status=Prediction.Status.ERROR)
    qs = qs.exclude(pk__in=finished.values("post_id"))
    if only_unlabelled:
        qs = qs.filter(annotations__isnull=True)
    ids = qs.order_by("pk").values_list("pk", flat=True).distinct()
    return list(ids[:limit] if limit else ids)


def prelabel_run_create(
    *, source: str, posts: Iterable[Post] | None = None, only_unlabelled: bool = False,
    limit: int | None = None, user=None,
) -> tuple[PrelabelRun, list[int]]:
    """A run and the post ids it must label. Raises SourceUnavailable (nothing created) when it cannot run."""
    src = get_source(source)
    ids = prelabel_candidates(source=src, posts=posts, only_unlabelled=only_unlabelled, limit=limit)
    run = PrelabelRun.objects.create(
        source=source, model_version=src.model_version, total=len(ids), post_ids=ids, created_by=user,
        status=PrelabelRun.Status.QUEUED if ids else PrelabelRun.Status.DONE,
        message="" if ids else "Nothing to label: every selected post already has a prediction from this source.",
        finished_at=None if ids else timezone.now(),
    )
    return run, ids


def prelabel_run_start(*, source: str, posts=None, only_unlabelled=False, limit=None, user=None, sync=False) -> PrelabelRun:
    """Create a run and label its posts: in chunks on Celery (default) or here and now (`sync`)."""
    run, ids = prelabel_run_create(source=source, posts=posts, only_unlabelled=only_unlabelled, limit=limit, user=user)
    if not ids:
        return run
    size = CHUNK_SIZES[source]
    chunks = [ids[i:i + size] for i in range(0, len(ids), size)]
    if sync:
        for chunk in chunks:
            prelabel_chunk_or_fail(run_id=run.pk, post_ids=chunk)
        run.refresh_from_db()
        return run
    from modeling import tasks

    task = {"teacher": tasks.teacher_label_chunk, "gazetteer": tasks.gazetteer_label_chunk,
            "student": tasks.student_label_chunk}[source]
    for chunk in chunks:
        task.delay_on_commit(run.pk, chunk)
    return run


def prelabel_chunk_or_fail(*, run_id: int, post_ids: list[int], owner: str = "") -> dict:
    """`prelabel_chunk`, recording an unexpected error on the run (then raising it) so no run stays 'running'."""
    try:
        return prelabel_chunk(run_id=run_id, post_ids=post_ids, owner=owner)
    except Exception as exc:
        prelabel_run_stop(run_id=run_id, status=PrelabelRun.Status.FAILED, message=f"{type(exc).__name__}: {exc}")
        raise


def prelabel_chunk(*, run_id: int, post_ids: list[int], owner: str = "") -> dict:
    """Label `post_ids` for the run's source; safe to run twice or concurrently (unique key + claims).
    `owner` (the Celery task id) marks this chunk's claims: the same message redelivered after its worker
    died takes its own claims back at once instead of skipping posts nobody labels."""
    run = PrelabelRun.objects.get(pk=run_id)
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    if run.status in (PrelabelRun.Status.STOPPED, PrelabelRun.Status.FAILED):
        return {**counts, "stopped": True}
    PrelabelRun.objects.filter(pk=run_id, status=PrelabelRun.Status.QUEUED).update(status=PrelabelRun.Status.RUNNING,
                                                                                  updated_at=timezone.now())
    try:
        source = get_source(run.source)
    except SourceUnavailable as exc:
        prelabel_run_stop(run_id=run_id, status=PrelabelRun.Status.FAILED, message=str(exc))
        return {**counts, "stopped": True}
    if source.model_version != run.model_version:
        # The setting changed under a queued run: label with what the run promised or not at all.
        prelabel_run_stop(run_id=run_id, status=PrelabelRun.Status.FAILED,
                          message=f"{run.source} is now {source.model_version}, not {run.model_version}: start a new run.")
        return {**counts, "stopped": True}
    posts = list(Post.objects.filter(pk__in=post_ids).order_by("pk"))
    gone = len(set(post_ids) - {p.pk for p in posts})  # deleted since the run was made
    if gone:
        _run_add(run_id, {"skipped": gone})
    if source.claims_posts:
        counts = _label_claiming(run_id, source, posts, owner)
    else:
        counts = _label_batch(run_id, source, posts)
    counts["skipped"] += gone
    if counts["ok"] or counts["failed"]:
        from annotation.services.queue import post_priority_refresh

        # New suggestions change which posts the work queue hands out first.
        post_priority_refresh(post_ids=[p.pk for p in posts])
    if source.name == "student" and counts["ok"]:
        from modeling.services.shadow import shadow_label

        shadow_label(post_ids=[p.pk for p in posts], model_version=source.model_version)
    return counts


def _label_batch(run_id: int, source: Source, posts: list[Post]) -> dict:
    key = {"source": source.name, "model_version": source.model_version, "prompt_version": source.prompt_version}
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    rows = {r.post_id: r for r in Prediction.objects.filter(post__in=posts, **key)}
    todo = [p for p in posts if p.pk not in rows or rows[p.pk].status == Prediction.Status.ERROR]
    counts["skipped"] = len(posts) - len(todo)
    for post, fields in zip(todo, source.predict_batch(todo) if todo else []):
        if post.pk in rows:  # a recorded error: this is its retry
            Prediction.objects.filter(pk=rows[post.pk].pk, status=Prediction.Status.ERROR).update(
                **fields, updated_at=timezone.now())
        elif not _create_once(post, key, fields):
            counts["skipped"] += 1
            continue
        counts["ok" if fields.get("status", "ok") == Prediction.Status.OK else "failed"] += 1
    _run_add(run_id, counts)
    return counts


def _create_once(post: Post, key: dict, fields: dict) -> bool:
    try:
        with transaction.atomic():
            Prediction.objects.create(post=post, **key, **fields)
        return True
    except IntegrityError:  # another worker stored it first: theirs stands
        return False


def _label_claiming(run_id: int, source: Source, posts: list[Post], owner: str = "") -> dict:
    """Post by post, the budget checked before each call; the run's counters move once per chunk."""
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    if PrelabelRun.objects.filter(pk=run_id, status=PrelabelRun.Status.STOPPED).exists():
        return counts
    # Summed once per chunk, then this chunk's own calls added: other workers' spending shows up at their
    # next chunk, so a budget can be overshot by at most one chunk per worker thread.
    spent = teacher_spent_usd()
    try:
        for post in posts:
            try:
                teacher_budget_check(spent)
            except BudgetExhausted as exc:
                prelabel_run_stop(run_id=run_id, status=PrelabelRun.Status.STOPPED, message=str(exc))
                break
            claim = prediction_claim(post=post, source=source, owner=owner)
            if claim is None:
                counts["skipped"] += 1
                continue
            fields = source.predict_batch([post])[0]
            Prediction.objects.filter(pk=claim.pk).update(**fields, updated_at=timezone.now())
            spent += fields.get("cost_usd") or 0
            counts["ok" if fields["status"] == Prediction.Status.OK else "failed"] += 1
    finally:
        _run_add(run_id, counts)
    return counts


def claim_reason(owner: str = "") -> str:
    return f"{CLAIM_REASON} {owner}"[:200].strip()


def prediction_claim(*, post: Post, source: Source, owner: str = "") -> Prediction | None:
    """Take `post` for a paid call, or None when it is finished or another worker is on it. A claim
    by the same `owner` (this task, redelivered) is taken back whatever its age."""
    key = {"post": post, "source": source.name, "model_version": source.model_version,
           "prompt_version": source.prompt_version}
    mine = claim_reason(owner)
    try:
        with transaction.atomic():  # the usual case, a post never tried: one INSERT claims it
            return Prediction.objects.create(**key, status=Prediction.Status.ERROR, status_reason=mine)
    except IntegrityError:
        pred = Prediction.objects.filter(**key).first()
    if pred is None:
        return None
    if pred.status != Prediction.Status.ERROR:
        return None
    claimed = pred.status_reason.startswith(CLAIM_REASON)
    if claimed and not (owner and pred.status_reason == mine) and pred.updated_at > timezone.now() - CLAIM_TTL:
        return None
    # A recorded error (retryable), a stale claim or our own: compare-and-swap on updated_at, so one worker wins.
    taken = Prediction.objects.filter(pk=pred.pk, status=Prediction.Status.ERROR, updated_at=pred.updated_at).update(
        status_reason=mine, updated_at=timezone.now())
    return pred if taken else None


def _run_add(run_id: int, counts: dict) -> None:
    """Add a chunk's (or one post's) counts; `done` counts every post handled, labelled or skipped."""
    handled = counts.get("ok", 0) + counts.get("failed", 0) + counts.get("skipped", 0)
    if handled:
        # `done` never passes `total`: a chunk the sweeper resent may count a post its first copy counted.
        PrelabelRun.objects.filter(pk=run_id).update(
            done=Least(F("done") + handled, F("total")), ok=F("ok") + counts.get("ok", 0),
            failed=F("failed") + counts.get("failed", 0), skipped=F("skipped") + counts.get("skipped", 0),
            updated_at=timezone.now())
    live = [PrelabelRun.Status.QUEUED, PrelabelRun.Status.RUNNING]
    run = PrelabelRun.objects.filter(pk=run_id).only("source", "model_version").first()
    if run is None:
        return
    # The count says done; the database decides: after a dead worker a post can be counted by two chunks
    # while a third still labels another, and a run whose posts another run still labels (it skipped
    # them as claimed) is done once that one has labelled them. So this chunk's labels may finish any
    # counted-out run of the same source.
    counted_out = PrelabelRun.objects.filter(done__gte=F("total"), status__in=live, source=run.source,
                                             model_version=run.model_version)
    for other in counted_out:
        if not prelabel_run_unhandled(other):
            PrelabelRun.objects.filter(pk=other.pk, status__in=live).update(status=PrelabelRun.Status.DONE,
                                                                           finished_at=timezone.now())


def prelabel_run_unhandled(run: PrelabelRun) -> int:
    """The run's posts (still in the database) with no prediction from its source, or only a worker's claim."""
    if not run.post_ids:
        return 0
    handled = Prediction.objects.filter(post_id__in=run.post_ids, source=run.source,
                                        model_version=run.model_version).exclude(
        status=Prediction.Status.ERROR, status_reason__startswith=CLAIM_REASON)
    return Post.objects.filter(pk__in=run.post_ids).exclude(pk__in=handled.values("post_id")).count()


def prelabel_run_stop(*, run_id: int, status: str, message: str) -> None:
    """Stop a run for good (budget spent, source unavailable, unexpected failure); the first reason stays."""
    PrelabelRun.objects.filter(pk=run_id).exclude(
        status__in=[PrelabelRun.Status.STOPPED, PrelabelRun.Status.FAILED, PrelabelRun.Status.DONE]
    ).update(status=status, message=message[:2000], finished_at=timezone.now())


def prelabel_run_is_finished(run: PrelabelRun) -> bool:
    return run.status in (PrelabelRun.Status.DONE, PrelabelRun.Status.STOPPED, PrelabelRun.Status.FAILED)


def prelabel_demo_start(*, local_teacher_url: str | None, log=print, wait_s: float = 60) -> list[PrelabelRun]:
    """`make run`: pre-label the posts nobody has annotated with the gazetteer and, when the teacher is the
    local endpoint replaying stored answers (never a paid API), with the teacher. Posts already
    pre-labelled are skipped, so a restart costs nothing."""
    import socket
    import time
    from urllib.parse import urlparse

    runs = []
    sources = ["gazetteer"]
    if local_teacher_url:
        url = urlparse(local_teacher_url)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                socket.create_connection((url.hostname, url.port), timeout=0.5).close()
                sources.append("teacher")
                break
            except OSError:
                time.sleep(0.3)
        else:
            log(f"The local teacher endpoint {local_teacher_url} did not start; skipping teacher pre-labels.")
    for source in sources:
        if source == "teacher":
            settings.GEMINI_BASE_URL = local_teacher_url  # this process enqueues; the workers got it by env
        try:
            run = prelabel_run_start(source=source, only_unlabelled=True)
        except SourceUnavailable as exc:
            log(str(exc))
            continue
        if run.total:
            log(f"Pre-labelling {run.total} posts with the {source}: /models/prelabel/{run.pk}/")
        runs.append(run)
    return runs
