"""The flywheel policy: a tick with too few new gold does nothing; with no promoted generation it trains and
promotes the first; with enough new gold it freezes, trains and keeps a generation the gate refuses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from annotation.models import DatasetVersion, Post, Prediction
from beautybrain_app.roles import Role
from annotation.services.datasets import dataset_freeze_now
from modeling.metrics import evaluate
from modeling.models import FlywheelTick, ModelGeneration, PrelabelRun, ShadowPrediction, ShadowRelease
from modeling.services import flywheel
from modeling.services.prelabel import prelabel_run_start
from modeling.services.shadow import in_sample, shadow_figures

from ..annotation.dataset_factories import gold, teacher, text_in_split
from .student_factories import build_tiny_qwen2
from .test_generations import SOCIAL, TINY


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory):
    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2-flywheel"))


@pytest.fixture
def policy_settings(settings, tmp_path, tiny_backbone):
    settings.MODELS_DIR = tmp_path / "models"
    settings.TORCH_THREADS = 1
    settings.BEAUTYBRAIN_BACKBONE = tiny_backbone
    settings.EXPORT_AFTER_TRAINING = False
    settings.FLYWHEEL_ENABLED = True
    settings.FLYWHEEL_MIN_NEW_GOLD = 3
    settings.FLYWHEEL_MAX_AGE_HOURS = 0
    settings.FLYWHEEL_EPOCHS = 2
    settings.FLYWHEEL_STUDENT_CONFIG = TINY
    return settings


def _gold_posts(tag: str, splits=("train", "train", "val", "test")) -> None:
    for split in splits:
        for template, mentions in SOCIAL:
            gold(text_in_split(split, template.replace("{}", f"{tag} {{}}")), mentions, is_beauty=bool(mentions))


@pytest.mark.django_db
def test_no_gold_nothing_to_do(policy_settings):
    tick = flywheel.flywheel_tick(trigger="command", sync=True)
    assert tick.outcome == FlywheelTick.Outcome.SKIPPED and "no gold" in tick.reason
    assert not DatasetVersion.objects.exists() and not ModelGeneration.objects.exists()


@pytest.mark.django_db
def test_ticks_bootstrap_skip_then_freeze_train_and_keep(kb, policy_settings, client_as):
    _gold_posts("a")
    Post.objects.create(text="fresh post about my olay cream", content_hash="fresh", external_id="f", platform="x")
    # No generation promoted and gold present: one tick freezes, trains and promotes the first.
    call_command("flywheel", "--once", "--sync")
    tick = FlywheelTick.objects.get()
    g1 = ModelGeneration.objects.get()
    assert tick.outcome == FlywheelTick.Outcome.PROMOTED, tick.reason
    assert g1.status == ModelGeneration.Status.PROMOTED and g1.metrics["student"]["span_f1"] >= 0
    assert tick.dataset_version.number == 1 and tick.generation == g1 and "no generation promoted" in tick.reason
    # Its suggestions for the posts nobody annotated (here one, without gold) are queued on the student queue.
    run = PrelabelRun.objects.get(source="student")
    assert run.model_version == "gen-1" and run.total == 1 and "pre-labelling 1 unannotated posts" in tick.reason

    # Nothing new: the next tick does nothing at all.
    again = flywheel.flywheel_tick(trigger="command", sync=True)
    assert again.outcome == FlywheelTick.Outcome.SKIPPED and "0 new gold < 3" in again.reason
    gold(text_in_split("train", "new lipstick {} from maybelline"), [("maybelline", "Maybelline", "makeup")])
    short = flywheel.flywheel_tick(trigger="command", sync=True)
    assert short.outcome == FlywheelTick.Outcome.SKIPPED and short.new_gold == 1 and "1 new gold < 3" in short.reason
    assert DatasetVersion.objects.count() == 1 and ModelGeneration.objects.count() == 1

    # Enough new gold: freeze v2, train gen-2; a gate it cannot pass keeps it, with the reason shown.
    _gold_posts("b", splits=("train",))
    ModelGeneration.objects.filter(pk=g1.pk).update(metrics={**g1.metrics, "student": {"span_f1": 2.0}})
    kept = flywheel.flywheel_tick(trigger="command", sync=True)
    g2 = kept.generation
    assert kept.outcome == FlywheelTick.Outcome.KEPT, kept.reason
    assert kept.new_gold == 6 and kept.dataset_version.number == 2 and g2.dataset_version.number == 2
    g1.refresh_from_db()
    g2.refresh_from_db()
    assert g2.status == ModelGeneration.Status.READY and g1.status == ModelGeneration.Status.PROMOTED
    assert f"gen-{g2.number} kept" in kept.reason and "does not beat gen-1" in kept.reason

    # The kept generation shadows the promoted one on a sample of incoming posts.
    release = ShadowRelease.objects.get(active=True)
    assert release.candidate == g2 and release.baseline == g1 and "shadowing gen-1" in kept.reason
    release.sample_share = 0.5
    release.save()
    incoming = [Post.objects.create(text=f"my olay cream {i} and sk2 essence" if i % 2 else f"nice park walk {i}",
                                    content_hash=f"in-{i}", external_id=f"in-{i}", platform="tiktok") for i in range(16)]
    prelabel_run_start(source="student", posts=incoming, sync=True)
    sampled = {p.pk for p in incoming if in_sample(p.content_hash, 0.5)}
    assert 0 < len(sampled) < 16
    assert set(ShadowPrediction.objects.values_list("post_id", flat=True)) == sampled
    answered = sorted(sampled)[:3]
    for pid in answered[:2]:
        post = Post.objects.get(pk=pid)
        teacher(post, [("sk2", "SK-II", "skincare")] if "sk2" in post.text else [])
    figures = shadow_figures(release)
    assert figures["sampled"] == figures["compared"] == len(sampled)
    assert figures["agree"] + figures["disagree"] == figures["compared"]
    assert figures["vs_teacher"]["posts"] == 2 and figures["vs_gold"]["posts"] == 0
    ref = [{"brands": p.spans} for p in Prediction.objects.filter(source="teacher", post_id__in=answered[:2]).order_by("post_id")]
    cand = [{"brands": s.spans} for s in ShadowPrediction.objects.filter(post_id__in=answered[:2]).order_by("post_id")]
    assert figures["vs_teacher"]["candidate_span_f1"] == round(evaluate(ref, cand)["span_f1"], 4)

    # The models page shows the policy and what each tick did.
    page = client_as(Role.ADMIN).get(reverse("generation_list")).content.decode()
    assert "Retraining policy" in page and "does not beat gen-1" in page and "≥ 3 new gold" in page
    assert "Shadow release: gen-2 beside promoted gen-1" in page and "Cascade dial of gen-1" in page
    home = client_as(Role.ADMIN).get(reverse("home")).content.decode()
    assert "Last version: v2" in home and "Next tick:" in home and "Teacher spend:" in home


@pytest.mark.django_db
def test_policy_schedule_busy_and_single_tick(kb, policy_settings):
    _gold_posts("c", splits=("train", "val"))
    version = dataset_freeze_now()
    promoted = ModelGeneration.objects.create(number=1, base_model="x", dataset_version=version,
                                              status=ModelGeneration.Status.PROMOTED)
    gold(text_in_split("train", "love {} my sk2 essence"), [("sk2", "SK-II", "skincare")])
    policy = flywheel.Policy.from_settings()
    assert not flywheel.policy_decide(policy).go
    # The schedule: one new gold is enough once the last version is old.
    policy_settings.FLYWHEEL_MAX_AGE_HOURS = 24
    assert not flywheel.policy_decide(now=timezone.now() + timedelta(hours=23)).go
    decision = flywheel.policy_decide(now=timezone.now() + timedelta(hours=25))
    assert decision.go and decision.freeze and decision.reason.startswith("schedule:") and decision.new_gold == 1
    # A generation in training blocks the tick; so does another tick already running.
    ModelGeneration.objects.create(number=2, base_model="x", dataset_version=version,
                                   status=ModelGeneration.Status.TRAINING)
    assert "gen-2 is training" in flywheel.policy_decide().reason
    FlywheelTick.objects.create(trigger="beat")
    assert flywheel.flywheel_tick(trigger="command", sync=True) is None
    assert promoted.status == ModelGeneration.Status.PROMOTED


def test_beat_runs_the_tick():
    from beautybrain_app.celery import app

    entry = app.conf.beat_schedule["flywheel-tick"]
    assert entry["task"] == "modeling.tasks.flywheel_tick" and entry["schedule"] > 0
    app.loader.import_default_modules()
    assert {"modeling.tasks.flywheel_tick", "modeling.tasks.gpu_flywheel_run"} <= set(app.tasks)
