"""The flywheel: one retraining policy, applied by a tick (Celery beat, `manage.py flywheel --once`).

A tick decides (policy_decide) and, when the policy says so, freezes a dataset version, trains a
generation, evaluates it side by side, exports it and promotes it if it passes the promotion gate
(generation_promote: beat the promoted generation's test span F1); a refused generation stays
`ready` and the tick records why. Every tick is a FlywheelTick row, so the models page shows what
the loop did and why. The work itself reuses the dataset and generation services unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.models import Annotation, DatasetVersion
from modeling.lifecycle import ACTIVE
from modeling.models import FlywheelTick, ModelGeneration

log = logging.getLogger(__name__)
Status = ModelGeneration.Status
Outcome = FlywheelTick.Outcome
# A tick still `running` after this long lost its worker: the next one may go.
TICK_STALE_AFTER = timedelta(hours=12)


@dataclass(frozen=True)
class Policy:
    enabled: bool
    min_new_gold: int
    max_age_hours: float
    tick_seconds: int
    epochs: float | None
    student_config: dict

    @classmethod
    def from_settings(cls) -> "Policy":
        return cls(enabled=settings.FLYWHEEL_ENABLED, min_new_gold=max(1, int(settings.FLYWHEEL_MIN_NEW_GOLD)),
                   max_age_hours=float(settings.FLYWHEEL_MAX_AGE_HOURS),
                   tick_seconds=int(settings.FLYWHEEL_TICK_SECONDS),
                   epochs=float(settings.FLYWHEEL_EPOCHS) or None,
                   student_config=dict(settings.FLYWHEEL_STUDENT_CONFIG or {}))


@dataclass(frozen=True)
class Decision:
    go: bool
    reason: str
    new_gold: int
    freeze: bool  # False: train on the last frozen version as it is (nothing new to freeze)


def last_frozen_version() -> DatasetVersion | None:
    return DatasetVersion.objects.filter(status=DatasetVersion.Status.FROZEN).order_by("-number").first()


def new_gold_count(version: DatasetVersion | None) -> int:
    """Gold annotations created or changed since `version` was frozen (all of them without a version)."""
    gold = Annotation.objects.filter(is_gold=True)
    if version is not None and version.frozen_at is not None:
        gold = gold.filter(updated_at__gt=version.frozen_at)
    return gold.count()


def policy_decide(policy: Policy | None = None, *, now=None) -> Decision:
    policy = policy or Policy.from_settings()
    last = last_frozen_version()
    new_gold = new_gold_count(last)
    if not policy.enabled:
        return Decision(False, "the flywheel is switched off (FLYWHEEL_ENABLED=false)", new_gold, False)
    busy = ModelGeneration.objects.filter(status__in=ACTIVE).order_by("-number").first()
    if busy is not None:
        return Decision(False, f"gen-{busy.number} is {busy.status}: one generation at a time", new_gold, False)
    if DatasetVersion.objects.filter(status=DatasetVersion.Status.FREEZING).exists():
        return Decision(False, "a dataset version is being frozen", new_gold, False)
    promoted = ModelGeneration.objects.filter(status=Status.PROMOTED).exists()
    if not promoted:
        if new_gold:
            return Decision(True, f"no generation promoted yet; {new_gold} new gold", new_gold, True)
        if last is not None and not last.generations.exists() and last.counts.get("gold", 0):
            return Decision(True, f"no generation promoted yet; v{last.number} was never trained on", 0, False)
        if last is None:
            return Decision(False, "no gold annotation yet", 0, False)
        return Decision(False, "no generation promoted yet, and no new gold since the last attempt", 0, False)
    if new_gold >= policy.min_new_gold:
        return Decision(True, f"{new_gold} new gold ≥ {policy.min_new_gold}", new_gold, True)
    if policy.max_age_hours and new_gold and last is not None and last.frozen_at is not None:
        age = (now or timezone.now()) - last.frozen_at
        if age >= timedelta(hours=policy.max_age_hours):
            return Decision(True, f"schedule: v{last.number} is {age.total_seconds() / 3600:.1f} h old "
                                  f"(≥ {policy.max_age_hours:g} h) and there are {new_gold} new gold", new_gold, True)
    return Decision(False, f"{new_gold} new gold < {policy.min_new_gold} since "
                           f"{'v%d' % last.number if last else 'the start'}", new_gold, False)


def _tick_open(trigger: str) -> FlywheelTick | None:
    """The running tick row, or None when another tick holds the (database-enforced) single slot."""
    FlywheelTick.objects.filter(status=FlywheelTick.Status.RUNNING,
                                started_at__lt=timezone.now() - TICK_STALE_AFTER).update(
        status=FlywheelTick.Status.DONE, outcome=Outcome.FAILED, finished_at=timezone.now(),
        reason="the worker running this tick went away")
    try:
        with transaction.atomic():
            return FlywheelTick.objects.create(trigger=trigger)
    except IntegrityError:
        return None


def _tick_close(tick: FlywheelTick, outcome: str, reason: str, **fields) -> FlywheelTick:
    for name, value in fields.items():
        setattr(tick, name, value)
    tick.status = FlywheelTick.Status.DONE
    tick.outcome = outcome
    tick.reason = reason[:2000]
    tick.finished_at = timezone.now()
    tick.save()
    log.info("flywheel tick %s: %s (%s)", tick.pk, outcome, reason)
    return tick


def flywheel_tick(*, trigger: str = "beat", sync: bool = False, policy: Policy | None = None) -> FlywheelTick | None:
    """Apply the policy once. `sync` does the work here; otherwise it goes to the gpu queue (one at a time).

    Returns the tick row, or None when another tick is running."""
    policy = policy or Policy.from_settings()
    tick = _tick_open(trigger)
    if tick is None:
        log.info("flywheel: another tick is running")
        return None
    decision = policy_decide(policy)
    tick.new_gold = decision.new_gold
    if not decision.go:
        return _tick_close(tick, Outcome.SKIPPED, decision.reason)
    tick.reason = decision.reason
    tick.save(update_fields=["new_gold", "reason"])
    if sync:
        return flywheel_run(tick_id=tick.pk, freeze=decision.freeze, policy=policy)
    from modeling.tasks import gpu_flywheel_run

    gpu_flywheel_run.delay(tick.pk, decision.freeze, policy.epochs)
    return tick


def flywheel_run(*, tick_id: int, freeze: bool, policy: Policy | None = None) -> FlywheelTick:
    """Freeze → train → evaluate → export → gate, for one tick. Idempotent: a finished tick returns as is;
    a redelivered one carries on with the generation it already made."""
    from annotation.services.datasets import DatasetError, dataset_freeze_now
    from modeling.services.generations import GenerationError, generation_create, generation_train

    policy = policy or Policy.from_settings()
    tick = FlywheelTick.objects.get(pk=tick_id)
    if tick.status == FlywheelTick.Status.DONE:
        return tick
    why = tick.reason
    try:
        if tick.generation_id is None:
            if tick.dataset_version_id is None:
                version = dataset_freeze_now(note=f"flywheel: {why}") if freeze else last_frozen_version()
                if version is None:
                    return _tick_close(tick, Outcome.FAILED, "there is no frozen dataset version to train on")
                tick.dataset_version = version
                tick.save(update_fields=["dataset_version"])
            tick.generation = generation_create(dataset_version=tick.dataset_version, epochs=policy.epochs,
                                                config=policy.student_config, enqueue=False)
            tick.save(update_fields=["generation"])
    except (DatasetError, GenerationError) as exc:
        return _tick_close(tick, Outcome.FAILED, f"{why}; could not start: {exc}")
    status = generation_train(generation_id=tick.generation_id)
    generation = ModelGeneration.objects.get(pk=tick.generation_id)
    if status != Status.READY and generation.status not in {Status.READY, Status.EXPORTING}:
        return _tick_close(tick, Outcome.FAILED, f"{why}; gen-{generation.number} {status}: {generation.error}")
    export_note = _export(generation)
    _calibrate_cascade(generation)
    return _gate(tick, generation, why, export_note)


def _calibrate_cascade(generation: ModelGeneration) -> None:
    """The cascade's P(error) and its dial on val, ready before the generation can serve."""
    from modeling.services.cascade import cascade_calibrate

    try:
        cascade_calibrate(generation=generation)
    except Exception:  # the dial is a figure for the page: it never blocks a promotion
        log.exception("flywheel: gen-%s cascade calibration", generation.number)


def _export(generation: ModelGeneration) -> str:
    """Export here (the gpu worker is ours until the tick ends); the queued copy then finds it done."""
    if not settings.EXPORT_AFTER_TRAINING:
        return "export off"
    from modeling.services.export import generation_export

    try:
        state = generation_export(generation_id=generation.pk).get("state", "?")
    except Exception as exc:  # the unquantised generation still serves: an export problem never blocks the loop
        log.exception("flywheel: gen-%s export", generation.number)
        state = f"error ({type(exc).__name__})"
    return f"export {state}"


def _gate(tick: FlywheelTick, generation: ModelGeneration, why: str, export_note: str) -> FlywheelTick:
    from modeling.services.generations import GenerationError, generation_promote

    generation.refresh_from_db()
    try:
        generation = generation_promote(generation=generation)
    except GenerationError as exc:  # PromotionRefused included: the generation stays ready, the reason shown
        return _tick_close(tick, Outcome.KEPT, f"{why}; gen-{generation.number} kept: {exc}; {export_note}"
                                               f"{_shadow(generation)}")
    return _tick_close(tick, Outcome.PROMOTED,
                       f"{why}; gen-{generation.number} promoted ({generation.promotion_note}); {export_note}"
                       f"{_prelabel_with(generation)}")


def _prelabel_with(generation: ModelGeneration) -> str:
    """The new generation's suggestions for every post nobody has annotated yet, on the student queue."""
    if not settings.FLYWHEEL_PRELABEL_ON_PROMOTE:
        return ""
    from modeling.services.prelabel import SourceUnavailable, prelabel_run_start

    try:
        run = prelabel_run_start(source="student", only_unlabelled=True)
    except SourceUnavailable as exc:
        return f"; no student pre-labels: {exc}"
    return f"; pre-labelling {run.total} unannotated posts with gen-{generation.number} (run {run.pk})"


def _shadow(generation: ModelGeneration) -> str:
    """A kept generation shadows the promoted one: incoming posts, teacher and gold then judge it again."""
    from modeling.services.shadow import ShadowError, shadow_start

    try:
        release = shadow_start(candidate=generation)
    except ShadowError as exc:
        return f"; no shadow: {exc}"
    return f"; shadowing gen-{release.baseline.number} on {release.sample_share:.0%} of incoming posts"


# -- reads for the pages --------------------------------------------------------------------------
def flywheel_status() -> dict:
    """Where the loop stands: policy, last ticks, next tick, last version and generations."""
    from modeling.services.prelabel import teacher_spent_usd

    policy = Policy.from_settings()
    ticks = list(FlywheelTick.objects.select_related("generation", "dataset_version")[:10])
    last_beat = next((t for t in ticks if t.trigger == "beat"), None)
    last = last_frozen_version()
    return {
        "policy": policy,
        "ticks": ticks,
        "next_tick_at": (last_beat.started_at if last_beat else timezone.now())
        + timedelta(seconds=policy.tick_seconds) if policy.enabled else None,
        "last_version": last,
        "new_gold": new_gold_count(last),
        "promoted": ModelGeneration.objects.filter(status=Status.PROMOTED).first(),
        "latest_generation": ModelGeneration.objects.order_by("-number").first(),
        "decision": policy_decide(policy),
        "teacher_spent_usd": teacher_spent_usd(),
        "teacher_budget_usd": settings.TEACHER_BUDGET_USD,
        "teacher_share_setting": settings.CASCADE_TEACHER_SHARE,
        "teacher_share_actual": _teacher_share(),
    }


def _teacher_share() -> float | None:
    """Share of pre-labelled posts the teacher was paid for (None before any pre-label)."""
    from annotation.models import Prediction

    labelled = Prediction.objects.exclude(source=Prediction.Source.GAZETTEER).values("post_id").distinct().count()
    if not labelled:
        return None
    taught = Prediction.objects.filter(source=Prediction.Source.TEACHER).values("post_id").distinct().count()
    return round(taught / labelled, 4)


def flywheel_after_prelabels(*, runs, wait_s: float = 900, poll_s: float = 2.0, log=print) -> FlywheelTick | None:
    """`make run`: once the demo pre-labels are in (so the teacher's silver is frozen with the gold), one tick;
    with no generation promoted it trains gen-1 on the gpu worker and promotes it."""
    import time

    from modeling.models import PrelabelRun
    from modeling.services.prelabel import prelabel_run_is_finished

    deadline = time.monotonic() + wait_s
    pending = [r.pk for r in runs]
    while pending and time.monotonic() < deadline:
        pending = [pk for pk in pending if not prelabel_run_is_finished(PrelabelRun.objects.get(pk=pk))]
        if pending:
            time.sleep(poll_s)
    from dataclasses import replace

    # The demo's gen-1 trains on gold + the teacher's silver: fewer epochs keep it within minutes on 2 cores.
    tick = flywheel_tick(trigger="demo", policy=replace(Policy.from_settings(),
                                                        epochs=float(settings.FLYWHEEL_DEMO_EPOCHS) or None))
    if tick is not None:
        log(f"Flywheel: {tick.outcome or 'training on the gpu worker'}: {tick.reason} (/models/)")
    return tick
