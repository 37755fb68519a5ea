"""Generations through Django: train on a frozen version, evaluate side by side, promote gate, pages,
commands, pre-labelling with the promoted generation, cancel, and resume after a killed training process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from annotation.models import Post
from beautybrain_app.roles import Role
from annotation.services.datasets import dataset_freeze_now
from modeling.models import ModelGeneration
from modeling.services import generations as svc

from ..annotation.dataset_factories import gold, teacher, text_in_split
from .student_factories import build_tiny_qwen2

ROOT = Path(__file__).resolve().parents[2]
TINY = {"batch_size": 8, "lr_scale": 8.0, "augment_prob": 0.0, "max_window": 24, "window_stride": 16,
        "eval_every_epochs": 1000, "checkpoint_every_steps": 2}

SOCIAL = [
    ("my #{} night serum from esteelauder is the best ✨", [("esteelauder", "Estée Lauder", "skincare")]),
    ("Got the new @cerave cleanser {} and it is so gentle", [("cerave", "CeraVe", "skincare")]),
    ("雅诗兰黛小棕瓶 真的好用 {} 推荐", [("雅诗兰黛", "Estée Lauder", "skincare")]),
    ("maybelline mascara {} vs l'oreal which one?", [("maybelline", "Maybelline", "makeup")]),
    ("weather is nice today {} going to the park", []),
]


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory):
    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2-gen"))


def _dataset(teacher_posts: int = 3):
    """Gold posts in every split (social styles) and teacher-labelled posts without gold (silver)."""
    for split in ("train", "train", "val", "test"):
        for template, mentions in SOCIAL:
            text = text_in_split(split, template.replace("{}", "{}"))
            gold(text, mentions, is_beauty=bool(mentions))
    for i in range(teacher_posts):
        p = Post.objects.create(text=f"new Maybelline lipstick {i} is nice", content_hash=f"silver-{i}",
                                external_id=f"s{i}", platform="instagram")
        teacher(p, [("Maybelline", "Maybelline", "makeup")])
    return dataset_freeze_now()


@pytest.mark.django_db
def test_train_evaluate_promote_and_prelabel(kb, tiny_backbone, settings, tmp_path, client_as):
    settings.MODELS_DIR = tmp_path / "models"
    settings.TORCH_THREADS = 1
    version = _dataset()
    g1 = svc.generation_create(dataset_version=version, base_model=tiny_backbone, epochs=10, config=TINY,
                               enqueue=False)
    assert svc.generation_train(generation_id=g1.pk) == ModelGeneration.Status.READY
    g1.refresh_from_db()
    assert g1.step == g1.total_steps > 0 and g1.progress == 1.0 and g1.loss_history
    metrics = g1.metrics
    for column in ("student", "gazetteer"):
        for key in ("span_f1", "span_precision", "span_recall", "brand_em", "category_accuracy", "beauty_f1",
                    "latency_ms_p50", "latency_ms_p95", "throughput_posts_s", "cost_per_1k_usd"):
            assert key in metrics[column], (column, key)
    assert "count_head_accuracy" in metrics["student"] and metrics["test_posts"] == len(SOCIAL)
    assert "teacher" in metrics
    # CeraVe is not in the demo KB; the gold train labels teach it to the student's own index.
    assert "CeraVe" in metrics["training"]["lexicon"]["top_new_brands"]
    manifest = json.loads((Path(g1.artifact_path) / "manifest.json").read_text())
    assert manifest["dataset_version"] == version.number and manifest["dataset_sha256"] == version.sha256
    assert not (Path(g1.artifact_path) / "checkpoint.pt").exists()

    # Promotion gate: the first one goes through; a worse one is refused unless forced (and logged).
    svc.generation_promote(generation=g1)
    g2 = svc.generation_create(dataset_version=version, base_model=tiny_backbone, epochs=1, config=TINY,
                               enqueue=False)
    svc.generation_train(generation_id=g2.pk)
    g2.refresh_from_db()
    g2.metrics = {**g2.metrics, "student": {**g2.metrics["student"], "span_f1": -1.0}}
    g2.save(update_fields=["metrics"])
    assert "promoted" in g2.metrics  # evaluated side by side with the promoted gen-1
    with pytest.raises(svc.PromotionRefused):
        svc.generation_promote(generation=g2)
    svc.generation_promote(generation=g2, force=True, user=None)
    g1.refresh_from_db()
    g2.refresh_from_db()
    assert g2.status == "promoted" and g1.status == "retired" and g2.promotion_note.startswith("FORCED")

    # Pre-labelling with the promoted generation, in a batch.
    from modeling.services.prelabel import student_predict_batch

    posts = list(Post.objects.order_by("id")[:4])
    rows = student_predict_batch(posts)
    assert len(rows) == 4 and all(r["status"] == "ok" and "spans" in r for r in rows)

    # evaluate / predict commands on a generation.
    data = tmp_path / "social.jsonl"
    with data.open("w") as f:
        for template, mentions in SOCIAL:
            text = template.format("x")
            brands = [{"start": text.index(w), "end": text.index(w) + len(w), "text": w, "brand": b, "category": c}
                      for w, b, c in mentions]
            f.write(json.dumps({"id": text[:5], "text": text, "is_beauty": bool(mentions), "brands": brands}) + "\n")
    from io import StringIO

    out = StringIO()
    call_command("evaluate", "--model", str(g2.number), "--data", str(data), "--json", stdout=out)
    figures = json.loads(out.getvalue())
    for key in ("span_f1", "span_precision", "span_recall", "brand_em", "category_accuracy", "beauty_f1",
                "latency_ms_p50", "throughput_posts_s", "count_head_accuracy"):
        assert key in figures
    call_command("predict", "--model", str(g2.number), "--data", str(data), "--out", str(tmp_path / "out.jsonl"),
                 stdout=StringIO())
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == len(SOCIAL) and all("brands" in json.loads(line) for line in lines)

    # Pages: list with the chart across generations, detail with the side-by-side table; no polling when done.
    client = client_as(Role.ADMIN)
    page = client.get(reverse("generation_list"))
    assert page.status_code == 200 and b"<svg" in page.content and b"gen-2" in page.content
    detail = client.get(reverse("generation_detail", args=[g1.number]))
    assert detail.status_code == 200 and b"gazetteer" in detail.content and b"hx-get" not in detail.content
    assert b"Brand names learnt from the training labels" in detail.content and b"CeraVe" in detail.content
    decoding = metrics["training"]["decoding"]  # chosen on val, shown with the threshold it chose
    assert b"Decoding chosen on val" in detail.content
    assert f"at least {decoding['span_threshold']} sure".encode() in detail.content
    partial = client.get(reverse("generation_detail", args=[g1.number]), HTTP_HX_REQUEST="true")
    assert partial.status_code == 286  # htmx: stop polling
    assert client_as(Role.ANNOTATOR).get(reverse("generation_list")).status_code == 403


@pytest.mark.django_db
def test_training_page_polls_and_admin_can_queue_cancel_and_resume(kb, tiny_backbone, settings, tmp_path,
                                                                    client_as, django_capture_on_commit_callbacks):
    settings.MODELS_DIR = tmp_path / "models"
    version = _dataset(teacher_posts=0)
    client = client_as(Role.ADMIN)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("generation_train_next"), {"dataset": version.number, "epochs": "1",
                                                                   "backbone": tiny_backbone})
    generation = ModelGeneration.objects.get()
    assert response.status_code == 302 and generation.status == "queued" and len(callbacks) == 1
    page = client.get(reverse("generation_detail", args=[generation.number]))
    assert b"hx-get" in page.content  # live progress polls while queued/training
    client.post(reverse("generation_action", args=[generation.number, "cancel"]))
    generation.refresh_from_db()
    assert generation.status == "cancelled"
    assert svc.generation_train(generation_id=generation.pk) == "cancelled"  # a late message is a no-op
    # A cancel while training is honoured by the run at its next step.
    ModelGeneration.objects.filter(pk=generation.pk).update(status="training", cancel_requested=False,
                                                           config={**generation.config, **TINY, "epochs": 20})
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("generation_action", args=[generation.number, "cancel"]))
    generation.refresh_from_db()
    assert generation.cancel_requested and generation.status == "training"
    assert svc.generation_train(generation_id=generation.pk) == "cancelled"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post(reverse("generation_action", args=[generation.number, "resume"]))
    generation.refresh_from_db()
    assert generation.status == "queued" and not generation.cancel_requested and len(callbacks) == 1


@pytest.mark.django_db(transaction=True)
def test_a_killed_training_process_leaves_a_resumable_generation(kb, tiny_backbone, settings, tmp_path):
    """SIGKILL the process training a generation (as a dying worker would): the row stays 'training' with a
    checkpoint on disk; running the task again (redelivery, or Resume on the page) continues from it."""
    from ..conftest import _worker_env

    version = _dataset(teacher_posts=2)
    generation = svc.generation_create(dataset_version=version, base_model=tiny_backbone, epochs=40,
                                       config={**TINY, "batch_size": 4}, enqueue=False)
    env = {**_worker_env(), "MODELS_DIR": str(settings.MODELS_DIR), "GPU_LEASE_SECONDS": "4"}
    proc = subprocess.Popen([sys.executable, "manage.py", "train_generation", "--resume", str(generation.number),
                             "--sync"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = Path(generation.artifact_path) / "checkpoint.pt"
    deadline = time.monotonic() + 120
    try:
        while not checkpoint.exists():
            assert proc.poll() is None, "training finished or crashed before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    generation.refresh_from_db()
    assert generation.status == "training" and 0 < generation.step < generation.total_steps
    # The dead process's lease is still fresh: a redelivered task must not train beside it...
    assert generation.lease_owner.endswith(f":{proc.pid}")
    settings.GPU_LEASE_SECONDS = 4
    assert svc.generation_train(generation_id=generation.pk) == svc.LEASED
    # ...and takes over once it lapses (no heartbeat from a dead worker).
    while ModelGeneration.objects.filter(pk=generation.pk, lease_until__gt=timezone.now()).exists():
        time.sleep(0.5)
    assert svc.generation_train(generation_id=generation.pk) == "ready"
    generation.refresh_from_db()
    assert generation.status == "ready" and generation.step == generation.total_steps
    summary = json.loads((Path(generation.artifact_path) / "training.json").read_text())
    assert summary["resumed_from"] > 0 and summary["resumed_from"] % 2 == 0  # a checkpoint (every 2 steps), not step 0


@pytest.mark.django_db(transaction=True)
def test_a_generation_another_live_worker_holds_is_left_alone_and_its_heartbeat_keeps_the_lease(kb, settings):
    from datetime import timedelta

    from annotation.models import DatasetVersion

    version = DatasetVersion.objects.create(number=7, status=DatasetVersion.Status.FROZEN)
    generation = ModelGeneration.objects.create(number=1, dataset_version=version, base_model="x",
                                                status="training", lease_owner="other-host:4242",
                                                lease_until=timezone.now() + timedelta(seconds=60))
    assert svc.generation_train(generation_id=generation.pk) == svc.LEASED
    generation.refresh_from_db()
    assert generation.status == "training" and generation.lease_owner == "other-host:4242"  # untouched
    # A lease held by this process beats while the work runs and is let go at the end.
    settings.GPU_LEASE_SECONDS = 4  # a beat every second
    ModelGeneration.objects.filter(pk=generation.pk).update(lease_owner=svc.lease_owner(), lease_until=timezone.now())
    with svc.GenerationLease(generation.pk, svc.lease_owner()):
        time.sleep(1.6)
        generation.refresh_from_db()
        assert generation.lease_until > timezone.now() + timedelta(seconds=2)
    generation.refresh_from_db()
    assert generation.lease_owner == "" and generation.lease_until is None


def test_a_loss_curve_of_one_point_is_said_not_drawn():
    from modeling.charts import line_chart

    one = line_chart({"training loss": [(5.0, 3.03)]}, x_label="step")
    assert "<svg" not in one and "training loss: 3.03 at step 5" in one
    two = line_chart({"training loss": [(5.0, 3.03), (10.0, 2.5)]}, x_label="step")
    assert two.count("<circle") == 2 and "step 5 – 10" in two


@pytest.mark.django_db
def test_a_finished_training_has_let_go_of_its_lease_when_it_enqueues_the_export(kb, tiny_backbone, settings,
                                                                                 tmp_path, monkeypatch):
    """The export the training enqueues must not find the training's own lease still held (it would be
    turned away as "another worker holds the generation's lease"), nor may a page see it ready but leased."""
    from modeling.services import export as export_svc

    settings.MODELS_DIR = tmp_path / "models"
    settings.TORCH_THREADS = 1
    seen = []
    monkeypatch.setattr(export_svc, "generation_export_after_training", lambda *, generation: seen.append(
        ModelGeneration.objects.values("status", "lease_owner", "lease_until").get(pk=generation.pk)))
    generation = svc.generation_create(dataset_version=_dataset(), base_model=tiny_backbone, epochs=2, config=TINY,
                                       enqueue=False)
    assert svc.generation_train(generation_id=generation.pk) == ModelGeneration.Status.READY
    assert seen == [{"status": ModelGeneration.Status.READY, "lease_owner": "", "lease_until": None}]
