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
    heads["tag_head.weight"] = torch.zeros_like(heads["tag_head.weight"])  # every token gets the same tag
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
    assert int8_bytes < 0.35 * fp32_bytes

    tokenizer = AutoTokenizer.from_pretrained(path)
    reference = AutoModel.from_pretrained(path).eval()
    enc = tokenizer([r["text"] for r in gold_rows(8)], return_tensors="pt", padding=True)
    with torch.no_grad():
        a, b = reference(**enc).last_hidden_state, reloaded(**enc).last_hidden_state
    mask = enc["attention_mask"].bool()
    cosine = torch.nn.functional.cosine_similarity(a[mask], b[mask], dim=-1).mean()
    assert 0.9 < cosine < 0.9999  # quantised (not identical), still the same representation
