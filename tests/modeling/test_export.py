"""Export: AWQ W4A16 on a tiny Qwen2 student (CPU, reload in a fresh process), int8 of the CPU backbone,
and the span-F1 gate refusing a broken export."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modeling import export
from tests.modeling.export_factories import (RELOAD_SCRIPT, gold_rows, tag_logits, tiny_qwen_dir,
                                             trained_student)

ROOT = Path(__file__).resolve().parents[2]
TRAIN_ROWS = 48


def _reload_in_fresh_process(export_dir: Path, texts: list[str], tmp: Path) -> dict:
    texts_file = tmp / "texts.json"
    texts_file.write_text(json.dumps(texts))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TORCH_THREADS": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, "-c", RELOAD_SCRIPT, str(export_dir), str(texts_file)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def qwen_student(tmp_path_factory):
    """A tiny Qwen2 student trained briefly on gold posts, and its AWQ export (8 calibration texts)."""
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("qwen")
    rows = gold_rows()
    backbone = tiny_qwen_dir(base / "backbone", [r["text"] for r in rows])
    artifact = trained_student(base / "artifact", str(backbone), rows[:TRAIN_ROWS])
    calibration = [r["text"] for r in rows[:8]]
    manifest = export.export_student(artifact, base / "awq", calibration_texts=calibration)
    return {"artifact": artifact, "export": base / "awq", "manifest": manifest, "rows": rows[:TRAIN_ROWS]}


@pytest.mark.slow
def test_awq_export_is_a_compressed_tensors_w4a16_checkpoint(qwen_student):
    from safetensors import safe_open

    manifest = qwen_student["manifest"]
    assert manifest["format"] == "awq"  # chosen from the backbone type, not asked for
    assert manifest["group_size"] == 64  # 128 does not divide the tiny model's width of 64
    config = json.loads((qwen_student["export"] / "backbone" / "config.json").read_text())
    quant = config["quantization_config"]
    assert quant["quant_method"] == "compressed-tensors"
    assert quant["format"] == "pack-quantized"
    weights = quant["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["strategy"], weights["group_size"]) == (4, "group", 64)
    with safe_open(str(qwen_student["export"] / "backbone" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        packed = f.get_tensor("layers.0.self_attn.q_proj.weight_packed")
    assert "layers.0.self_attn.q_proj.weight" not in keys  # no full-precision copy left beside the packed one
    assert packed.dtype == torch.int32 and packed.shape == (64, 8)  # 8 int4 values per int32
    assert "tag_head.weight" in _safetensors_keys(qwen_student["export"] / export.HEADS_FILE)
    assert manifest["size_after_bytes"] < manifest["size_before_bytes"]


def _safetensors_keys(path: Path) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return set(f.keys())


@pytest.mark.slow
def test_awq_export_reloads_in_a_fresh_process_close_to_the_unquantised_model(qwen_student, tmp_path):
    from modeling.student.predict import StudentPredictor

    texts = [r["text"] for r in qwen_student["rows"][:24]]
    fresh = _reload_in_fresh_process(qwen_student["export"], texts, tmp_path)
    assert "layers.0.mlp.down_proj.weight_packed" in fresh["packed_params"]

    reference = StudentPredictor.load(qwen_student["artifact"])
    ref_logits = tag_logits(reference, texts)
    agree = total = 0
    max_diff = 0.0
    for ours, theirs in zip(ref_logits, fresh["logits"], strict=True):
        a, b = torch.tensor(ours), torch.tensor(theirs)
        assert a.shape == b.shape
        agree += int((a.argmax(-1) == b.argmax(-1)).sum())
        total += a.shape[0]
        max_diff = max(max_diff, float((a - b).abs().max()))
    assert agree / total >= 0.95, f"tags agree on {agree}/{total} tokens"
    assert 0 < max_diff < 1.0  # quantised (not bit-identical), yet close
    ref_spans = [[(b["start"], b["end"]) for b in p["brands"]] for p in reference.predict(texts)]
    new_spans = [[(b["start"], b["end"]) for b in p["brands"]] for p in fresh["predictions"]]
    assert sum(a == b for a, b in zip(ref_spans, new_spans)) >= 0.9 * len(texts)
    assert any(ref_spans), "the reference predicts no span: the comparison would prove nothing"


@pytest.mark.slow
def test_gate_passes_the_awq_export_and_refuses_a_broken_one(qwen_student, tmp_path):
    from safetensors.torch import load_file, save_file

    from modeling.student.predict import StudentPredictor

    reference = StudentPredictor.load(qwen_student["artifact"])
    rows = qwen_student["rows"]
    good = export.evaluate_export(reference, export.load_exported(qwen_student["export"]), rows, measure=False)
    assert good["before"]["span_f1"] > 0.2
    assert good["passed"] and good["span_f1_drop"] <= export.MAX_SPAN_F1_DROP

    broken = tmp_path / "broken"
    shutil.copytree(qwen_student["export"], broken)
    heads = load_file(str(broken / export.HEADS_FILE))
    # Every word tagged B with certainty: a confident span per word, which KB-aware decoding keeps beside
    # the gazetteer's matches wherever they do not overlap.
    heads["tag_head.weight"] = torch.zeros_like(heads["tag_head.weight"])
    heads["tag_head.bias"] = torch.tensor([0.0, 20.0, 0.0])
    save_file(heads, str(broken / export.HEADS_FILE))
    bad = export.evaluate_export(reference, export.load_exported(broken), rows, measure=False)
    assert not bad["passed"]
    assert bad["span_f1_drop"] > export.MAX_SPAN_F1_DROP
    assert bad["deltas"]["span_f1"] == pytest.approx(-bad["span_f1_drop"], abs=1e-4)


def test_gate_threshold_is_three_points_of_span_f1():
    assert export.span_f1_gate({"span_f1": 0.80}, {"span_f1": 0.77})[0]
    assert not export.span_f1_gate({"span_f1": 0.80}, {"span_f1": 0.769})[0]
    assert export.span_f1_gate({"span_f1": 0.50}, {"span_f1": 0.60}) == (True, pytest.approx(-0.10))


def test_group_size_is_fitted_to_the_layer_widths():
    widths = lambda *ws: torch.nn.Sequential(*[torch.nn.Linear(w, 8) for w in ws])  # noqa: E731
    assert export.fitted_group_size(widths(896, 4864)) == 128  # Qwen2.5-0.5B
    assert export.fitted_group_size(widths(64, 128)) == 64
    assert export.fitted_group_size(widths(96)) == 32
    with pytest.raises(export.ExportError):
        export.fitted_group_size(widths(7))


def test_int8_export_of_the_cpu_backbone_reloads_smaller_and_close(tmp_path):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    from transformers import AutoModel, AutoTokenizer

    from modeling.student.config import default_backbone

    torch.set_num_threads(1)
    path = default_backbone()
    info = export.export_int8(path, tmp_path / "int8")
    assert info["format"] == "int8"
    reloaded = export.load_backbone(tmp_path / "int8")
    linears = [m for m in reloaded.modules() if isinstance(m, torch.nn.Linear)]
    assert not linears, f"{len(linears)} linear layers left in fp32"
    assert sum(isinstance(m, DynamicLinear) for m in reloaded.modules()) == 37  # 6 layers × 6 projections + pooler
    fp32_bytes = (Path(path) / "model.safetensors").stat().st_size
    int8_bytes = (tmp_path / "int8" / export.INT8_STATE).stat().st_size
    assert int8_bytes < 0.35 * fp32_bytes  # int8 linear layers and word embeddings

    tokenizer = AutoTokenizer.from_pretrained(path)
    reference = AutoModel.from_pretrained(path).eval()
    enc = tokenizer([r["text"] for r in gold_rows(8)], return_tensors="pt", padding=True)
    with torch.no_grad():
        a, b = reference(**enc).last_hidden_state, reloaded(**enc).last_hidden_state
    mask = enc["attention_mask"].bool()
    cosine = torch.nn.functional.cosine_similarity(a[mask], b[mask], dim=-1).mean()
    assert 0.9 < cosine < 0.9999  # quantised (not identical), still the same representation


# -- the generation's export: service, command, task ----------------------------------------------

def _frozen_version(test_rows: list[dict], train_rows: list[dict]):
    from annotation.datasets import content_hash
    from annotation.models import DatasetItem, DatasetVersion, Post

    version = DatasetVersion.objects.create(number=1)
    items = []
    for split, rows in (("test", test_rows), ("train", train_rows)):
        for i, row in enumerate(rows):
            post = Post.objects.create(platform="reddit", external_id=f"{split}-{i}", text=row["text"],
                                       content_hash=content_hash(f"{split}-{i}-{row['text']}"))
            items.append(DatasetItem(version=version, post=post, split=split, text=row["text"],
                                     is_beauty=row.get("is_beauty"), spans=row.get("brands") or []))
    DatasetItem.objects.bulk_create(items)
    DatasetVersion.objects.filter(pk=version.pk).update(status=DatasetVersion.Status.FROZEN)
    version.refresh_from_db()
    return version


@pytest.fixture
def ready_generation(db, qwen_student, tmp_path):
    """A trained generation whose artifact is a copy of the tiny Qwen2 student (the export writes inside it)."""
    from modeling.models import ModelGeneration

    artifact = tmp_path / "gen-1"
    shutil.copytree(qwen_student["artifact"], artifact)
    rows = gold_rows()
    version = _frozen_version(qwen_student["rows"], rows[TRAIN_ROWS:TRAIN_ROWS + 6])
    config = json.loads((artifact / "config.json").read_text())
    return ModelGeneration.objects.create(number=1, base_model=config["backbone"], dataset_version=version,
                                          config=config, status=ModelGeneration.Status.READY,
                                          artifact_path=str(artifact))


@pytest.mark.slow
def test_export_generation_command_records_figures_and_serving_uses_the_export(ready_generation, settings,
                                                                              client_as):
    from django.core.management import call_command
    from django.urls import reverse

    from beautybrain_app.roles import Role

    from modeling.services.export import serving_export_dir, serving_predictor

    settings.TORCH_THREADS = 1
    call_command("export_generation", "1", "--sync")
    ready_generation.refresh_from_db()
    metrics = ready_generation.export_metrics
    assert ready_generation.status == "ready"  # back from "exporting"
    assert metrics["state"] == "passed" and metrics["format"] == "awq"
    assert metrics["test_posts"] == TRAIN_ROWS and metrics["dataset_version"] == 1
    assert metrics["size_after_bytes"] < metrics["size_before_bytes"]
    for key in ("latency_p50_ms_before", "latency_p50_ms_after", "posts_per_s_before", "posts_per_s_after"):
        assert metrics[key] > 0
    assert metrics["before"]["span_f1"] > 0.2 and "span_f1" in metrics["deltas"]
    assert metrics["calibration_samples"] == 6  # the version's own train texts
    assert Path(ready_generation.export_path) == Path(ready_generation.artifact_path) / "export-awq"
    assert serving_export_dir(ready_generation) == Path(ready_generation.export_path)
    served = serving_predictor(ready_generation)
    assert served.model.backbone.layers[0].self_attn.q_proj.weight_packed.dtype == torch.int32
    assert len(served.predict(["my SK2 essence > la mer tbh"])) == 1

    page = client_as(Role.ADMIN).get(reverse("generation_detail", args=[1])).content.decode()
    assert "awq passed" in page and f"{metrics['posts_per_s_after']}" in page and "3 points of span F1" in page

    # Pre-labelling with this generation goes through the export once it has passed.
    from types import SimpleNamespace

    from modeling.services import export as export_service
    from modeling.services.serving import predict_posts

    export_service._loaded.clear()
    rows = predict_posts(ready_generation, [SimpleNamespace(text="my SK2 essence > la mer tbh")])
    assert len(rows) == 1 and rows[0]["status"] == "ok"
    assert [Path(k.split(":")[0]).name for k in export_service._loaded] == ["export-awq"]

    finished = metrics["finished_at"]
    call_command("export_generation", "gen-1", "--sync")  # idempotent: a finished export is not redone
    ready_generation.refresh_from_db()
    assert ready_generation.export_metrics["finished_at"] == finished


@pytest.mark.slow
def test_an_export_failing_the_gate_is_kept_for_audit_and_not_served(ready_generation, settings):
    from modeling.services.export import generation_export, serving_export_dir, serving_predictor

    settings.TORCH_THREADS = 1
    settings.EXPORT_MAX_SPAN_F1_DROP = -0.5  # a gate no export can pass: span F1 would have to rise 50 points
    from django.db.models.signals import post_save

    from modeling.models import ModelGeneration

    saved = []  # every row write while exporting: none may say "ready" while the lease is still held

    def record(sender, instance, **kwargs):
        saved.append((instance.status, instance.lease_owner, instance.lease_until))

    post_save.connect(record, sender=ModelGeneration)
    try:
        metrics = generation_export(generation_id=ready_generation.pk, fmt="awq")
    finally:
        post_save.disconnect(record, sender=ModelGeneration)
    assert [s for s, *_ in saved] == ["exporting", "ready"]
    assert saved[-1][1:] == ("", None)  # the last write let go of the lease with it
    ready_generation.refresh_from_db()
    assert metrics["state"] == "failed" and not metrics["passed"]
    assert "span F1 fell" in metrics["reason"]
    assert ready_generation.status == "ready"
    assert (Path(ready_generation.export_path) / "export.json").exists()  # kept for audit
    assert serving_export_dir(ready_generation) is None and serving_predictor(ready_generation) is None


def test_export_task_is_routed_to_the_gpu_queue_and_refuses_untrained_generations(db, settings,
                                                                                    django_capture_on_commit_callbacks):
    from annotation.models import DatasetVersion
    from beautybrain_app.celery import app
    from modeling.models import ModelGeneration
    from modeling.services.export import ExportRefused, generation_export_enqueue
    from modeling.tasks import gpu_export_generation

    assert app.amqp.router.route({}, gpu_export_generation.name)["queue"].name == "gpu"
    version = DatasetVersion.objects.create(number=1)
    generation = ModelGeneration.objects.create(number=1, base_model="x", dataset_version=version,
                                                status=ModelGeneration.Status.TRAINING)
    with pytest.raises(ExportRefused):
        generation_export_enqueue(generation=generation)
    generation.status = ModelGeneration.Status.READY
    generation.save()
    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            generation_export_enqueue(generation=generation, fmt="int8")
    finally:
        app.conf.task_always_eager = False
    generation.refresh_from_db()
    # The task ran: no artifact on disk, so the export records an error and the generation stays usable.
    assert generation.export_metrics["state"] == "error" and generation.status == "ready"
    assert generation.export_path == ""


def test_int8_export_of_a_cpu_student_serves_with_its_heads(tmp_path):
    """A MiniLM student (untrained heads are enough: the export must carry them, not judge them)."""
    from modeling.student.config import StudentConfig
    from modeling.student.predict import StudentPredictor
    from modeling.student.train import brand_table, build_model, load_tokenizer, write_artifact
    from tests.modeling.export_factories import kb_index

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = StudentConfig(unfreeze_layers=0, max_window=64, window_stride=48)
    index = kb_index()
    brands = brand_table(index)
    model = build_model(cfg, len(brands))
    with torch.no_grad():  # LoRA starts as a no-op (B = 0): give it weight so the merge is tested
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    model.eval()
    write_artifact(model, load_tokenizer(cfg.resolved_backbone()), cfg, index, brands, tmp_path / "artifact")

    manifest = export.export_student(tmp_path / "artifact", tmp_path / "int8")
    assert manifest["format"] == "int8" and manifest["backbone_type"] == "bert"
    heads = (tmp_path / "int8" / export.HEADS_FILE).stat().st_size  # fp32 in both: brand table, character buckets
    backbone_ratio = (manifest["size_before_bytes"] - heads) / (manifest["size_after_bytes"] - heads)
    assert backbone_ratio > 3.0 and manifest["size_ratio"] > 2.5  # int8 linear layers and word embeddings
    served = export.load_exported(tmp_path / "int8")
    reference = StudentPredictor.load(tmp_path / "artifact")
    texts = [r["text"] for r in gold_rows(6)]
    a = torch.cat([torch.tensor(x).flatten() for x in tag_logits(reference, texts)])
    b = torch.cat([torch.tensor(x).flatten() for x in tag_logits(served, texts)])
    assert float(torch.nn.functional.cosine_similarity(a, b, dim=0)) > 0.9
    assert not torch.equal(a, b)
    assert [set(p) for p in served.predict(texts)] == [set(p) for p in reference.predict(texts)]


def test_admin_action_queues_an_export_and_the_changelist_shows_its_state(db, client,
                                                                          django_capture_on_commit_callbacks):
    from django.contrib.auth import get_user_model

    from annotation.models import DatasetVersion
    from modeling.models import ModelGeneration

    admin_user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-for-tests-1")
    client.force_login(admin_user)
    version = DatasetVersion.objects.create(number=1)
    ready = ModelGeneration.objects.create(number=1, base_model="x", dataset_version=version,
                                           status=ModelGeneration.Status.READY)
    training = ModelGeneration.objects.create(number=2, base_model="x", dataset_version=version,
                                              status=ModelGeneration.Status.TRAINING)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post("/admin/modeling/modelgeneration/", {
            "action": "export_generations", "_selected_action": [ready.pk, training.pk]}, follow=True)
    assert response.status_code == 200
    assert len(callbacks) == 1  # one task sent, for the ready generation only
    ready.refresh_from_db()
    training.refresh_from_db()
    assert ready.export_metrics["state"] == "queued" and training.export_metrics == {}
    page = response.content.decode()
    import re
    cells = re.findall(r'<td class="field-export_state">([^<]*)</td>', page)
    assert sorted(cells) == ["queued", "—"]  # the export column: gen-1 queued, gen-2 never exported
    assert "Export queued: gen-1." in page and "gen-2 is training" in page.lower()


def test_a_ready_generation_is_exported_after_training_unless_switched_off(db, settings,
                                                                           django_capture_on_commit_callbacks):
    from annotation.models import DatasetVersion
    from modeling.models import ModelGeneration
    from modeling.services.export import generation_export_after_training

    version = DatasetVersion.objects.create(number=1)
    generation = ModelGeneration.objects.create(number=1, base_model="x", dataset_version=version,
                                                status=ModelGeneration.Status.READY)
    settings.EXPORT_AFTER_TRAINING = False
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        generation_export_after_training(generation=generation)
    assert not callbacks
    settings.EXPORT_AFTER_TRAINING = True
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        generation_export_after_training(generation=generation)
    assert len(callbacks) == 1
    generation.refresh_from_db()
    assert generation.export_metrics["state"] == "queued"
