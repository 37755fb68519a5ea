"""Export of a trained student for serving: AWQ W4A16 for decoder backbones, int8 for CPU encoders.

Django-free. Two layers:
- backbone level: `export_awq` / `export_int8` quantise a Hugging Face backbone (a directory or a
  loaded model) into a directory; `load_backbone` reloads either kind in any process.
- student level: `export_student` turns a generation's artifact (LoRA adapter + heads, see
  modeling.student.train.write_artifact) into an export directory (quantised backbone with the LoRA
  merged in, the heads beside it), `load_exported` gives a StudentPredictor over it, and
  `evaluate_export` measures both on the same rows and applies the span-F1 gate.

Layout of an export directory:
    export.json          format, scheme, sizes; what `load_backbone`/`load_exported` read first
    backbone/            AWQ: compressed-tensors checkpoint (transformers and vLLM load it as is);
                         int8: config.json + int8_state.pt (torch dynamic-quantised state dict)
    heads.safetensors    every StudentModel weight outside the backbone
    tokenizer/, config.json, kb.json, brands.json   copied from the artifact
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from modeling.speed import measure_speed

FORMAT_AWQ = "awq"
FORMAT_INT8 = "int8"
FORMATS = (FORMAT_AWQ, FORMAT_INT8)
MANIFEST = "export.json"
HEADS_FILE = "heads.safetensors"
INT8_STATE = "int8_state.pt"
# Losing more than this much span F1 (absolute, 0..1) against the unquantised model fails an export.
MAX_SPAN_F1_DROP = 0.03

# Backbones whose linear layers AWQ knows how to balance (llm-compressor's default mappings:
# input_layernorm → q/k/v, v → o, post_attention_layernorm → gate/up, up → down).
DECODER_MODEL_TYPES = {"qwen2", "qwen3", "llama", "mistral"}
_GROUP_SIZES = (128, 64, 32, 16, 8)


class ExportError(Exception):
    pass


def default_format(backbone_config) -> str:
    return FORMAT_AWQ if getattr(backbone_config, "model_type", "") in DECODER_MODEL_TYPES else FORMAT_INT8


def format_for(backbone: str | Path) -> str:
    """The export format a backbone gets by default (reads only its config)."""
    from transformers import AutoConfig

    return default_format(AutoConfig.from_pretrained(str(backbone)))


def dir_size(path: str | Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- AWQ (decoder backbones) -----------------------------------------------------------------------

def fitted_group_size(model: nn.Module, preferred: int = 128) -> int:
    """The largest group size ≤ preferred that divides the input width of every linear layer.

    W4A16's 128 fits Qwen2.5 (896, 4864, ...); a tiny test model with hidden size 64 needs 64 or less,
    and compressed-tensors refuses a group size that does not divide a layer's columns."""
    widths = {m.in_features for m in model.modules() if isinstance(m, nn.Linear)}
    if not widths:
        raise ExportError("the backbone has no linear layers to quantise")
    for g in _GROUP_SIZES:
        if g <= preferred and all(w % g == 0 for w in widths):
            return g
    raise ExportError(f"no group size in {_GROUP_SIZES} divides the layer widths {sorted(widths)}")


@contextlib.contextmanager
def _cpu_safe_activation_cache():
    """llm-compressor pins its cached activations before AWQ's grid search, for faster host→GPU copies.
    Pinning needs an accelerator: on a CPU host torch raises "Cannot access accelerator device", so the
    pinning is switched off there (the cache stays in ordinary memory; nothing else changes)."""
    if torch.accelerator.is_available():
        yield
        return
    from llmcompressor.pipelines.cache import IntermediatesCache

    original = IntermediatesCache.pin_memory
    IntermediatesCache.pin_memory = lambda self, *args, **kwargs: None
    try:
        yield
    finally:
        IntermediatesCache.pin_memory = original


def _as_model_dir(model_dir_or_model, tokenizer, workdir: Path) -> Path:
    """oneshot reads the model's on-disk config (`config.name_or_path`): an in-memory model is saved first."""
    if isinstance(model_dir_or_model, (str, Path)):
        return Path(model_dir_or_model)
    path = workdir / "full_precision"
    model_dir_or_model.save_pretrained(str(path))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(path))
    return path


def export_awq(model_dir_or_model, tokenizer, calibration_texts, out_dir, *, group_size: int | None = None,
               max_seq_length: int = 256, max_calibration_samples: int = 256) -> dict:
    """AWQ W4A16 (4-bit symmetric int weights in groups, 16-bit activations) with llm-compressor.

    Calibration runs the backbone on `calibration_texts` (the generation's own train texts). Writes a
    compressed-tensors checkpoint to out_dir that `AutoModel.from_pretrained` reloads (CPU included)."""
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.core import reset_session
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform.awq import AWQModifier, default_mappings
    from transformers import AutoModel

    texts = [t for t in dict.fromkeys(calibration_texts) if t and t.strip()][:max_calibration_samples]
    if not texts:
        raise ExportError("AWQ needs calibration texts")
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="awq-") as tmp:
        source = _as_model_dir(model_dir_or_model, tokenizer, Path(tmp))
        model = AutoModel.from_pretrained(str(source))
        model.eval()
        g = group_size or fitted_group_size(model)
        rows = [dict(tokenizer(t, truncation=True, max_length=max_seq_length)) for t in texts]
        dataset = Dataset.from_list(rows)
        scheme = QuantizationScheme(
            targets=["Linear"],
            weights=QuantizationArgs(num_bits=4, type="int", symmetric=True, strategy="group", group_size=g),
        )
        recipe = [AWQModifier(mappings=default_mappings),
                  QuantizationModifier(config_groups={"group_0": scheme}, ignore=[])]
        started = time.monotonic()
        try:
            with _cpu_safe_activation_cache():
                oneshot(model=model, processor=tokenizer, dataset=dataset, recipe=recipe,
                        num_calibration_samples=len(rows), max_seq_length=max_seq_length,
                        shuffle_calibration_samples=False)
            out_dir.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(str(out_dir), save_compressed=True)
        finally:
            # The compression session is process-global: a Celery worker exporting twice must start clean.
            reset_session()
        if tokenizer is not None:
            tokenizer.save_pretrained(str(out_dir))
    return {"format": FORMAT_AWQ, "scheme": "W4A16", "group_size": g, "symmetric": True,
            "calibration_samples": len(rows), "quantize_seconds": round(time.monotonic() - started, 2)}


# -- int8 (CPU encoders) ---------------------------------------------------------------------------

def quantize_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8: linear layers (int8 weights with per-channel scales, activations quantised per batch)
    and the word embeddings (8-bit rows).

    Per-channel, not per-tensor: on all-MiniLM-L6-v2 per-tensor scales keep token states at a mean cosine of
    0.91 to fp32, per-channel at 0.96. On a gold-trained student, span F1 over all 600 gold posts: fp32
    0.6855, linear int8 0.6775, linear + word-embedding int8 0.6802 (the embedding rows cost nothing
    measurable and are half of a MiniLM's bytes). Only the word embeddings: position/type embeddings are
    tiny, and BERT looks them up with expanded (non-contiguous) index tensors, which the quantised
    embedding kernel refuses."""
    import warnings

    from torch.ao.quantization import float_qparams_weight_only_qconfig, per_channel_dynamic_qconfig

    word = model.get_input_embeddings()
    word_name = next(n for n, m in model.named_modules() if m is word)
    spec = {nn.Linear: per_channel_dynamic_qconfig, word_name: float_qparams_weight_only_qconfig}
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao; the eager dynamic path still works on 2.13.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return torch.ao.quantization.quantize_dynamic(model, spec, inplace=False)


def export_int8(model_dir_or_model, out_dir, *, tokenizer=None) -> dict:
    """int8 dynamic quantisation with torch (measured faster than ONNX Runtime int8 here: see bench/export.py).

    A dynamic-quantised module cannot go through `save_pretrained`; the directory holds the config and the
    quantised state dict, and `load_backbone` rebuilds the same modules before loading it."""
    from transformers import AutoModel

    out_dir = Path(out_dir)
    model = (AutoModel.from_pretrained(str(model_dir_or_model)) if isinstance(model_dir_or_model, (str, Path))
             else model_dir_or_model)
    model = model.float().eval()
    started = time.monotonic()
    quantised = quantize_int8(model)
    # The float tensors left (position embeddings, norms) are about 1 MB: fp32, as trained.
    state = quantised.state_dict()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(str(out_dir))
    torch.save(state, out_dir / INT8_STATE)
    info = {"format": FORMAT_INT8, "scheme": "dynamic-int8-per-channel+int8-word-embeddings",
            "quantize_seconds": round(time.monotonic() - started, 2)}
    (out_dir / "int8.json").write_text(json.dumps(info))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out_dir))
    return info


def load_backbone(path: str | Path, device: str = "cpu") -> nn.Module:
    """Reload an exported backbone (either format) in a fresh process."""
    from transformers import AutoConfig, AutoModel

    path = Path(path)
    if (path / "int8.json").exists():
        config = AutoConfig.from_pretrained(str(path))
        model = quantize_int8(AutoModel.from_config(config).float().eval())
        # weights_only: the state holds packed int8 params, which torch's safe loader accepts.
        model.load_state_dict(torch.load(path / INT8_STATE, map_location="cpu", weights_only=True))
        return model.eval()
    # compressed-tensors checkpoint: transformers reads quantization_config and builds the layers.
    return AutoModel.from_pretrained(str(path)).to(device).eval()


# -- student level ---------------------------------------------------------------------------------

def _load_student_parts(artifact_dir: Path):
    from modeling.student.config import StudentConfig
    from modeling.student.kbsnap import index_from_rows, load_rows

    cfg = StudentConfig.load(artifact_dir / "config.json")
    brands = json.loads((artifact_dir / "brands.json").read_text())
    index = index_from_rows(load_rows(artifact_dir / "kb.json"))
    return cfg, brands, index


def merged_student(artifact_dir: str | Path):
    """The trained student with its LoRA merged into the backbone (and peft's head copies unwrapped)."""
    from modeling.student.model import StudentModel
    from modeling.student.train import load_model

    artifact_dir = Path(artifact_dir)
    cfg, brands, _ = _load_student_parts(artifact_dir)
    model, tokenizer = load_model(artifact_dir, cfg, len(brands))
    student = model.merge_and_unload()
    if not isinstance(student, StudentModel):
        raise ExportError(f"merging the adapter gave {type(student).__name__}, not a StudentModel")
    return student.eval(), tokenizer


def export_student(artifact_dir: str | Path, out_dir: str | Path, *, fmt: str | None = None,
                   calibration_texts=(), group_size: int | None = None, max_calibration_samples: int = 256) -> dict:
    """Quantise a student artifact into out_dir (replaced if present); returns the manifest."""
    from safetensors.torch import save_file

    from modeling.student.train import PLAIN_WORDS_FILE

    artifact_dir, out_dir = Path(artifact_dir), Path(out_dir)
    student, tokenizer = merged_student(artifact_dir)
    fmt = fmt or default_format(student.backbone.config)
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    heads = {k: v.detach().cpu().contiguous() for k, v in student.state_dict().items()
             if not k.startswith("backbone.")}
    save_file(heads, str(out_dir / HEADS_FILE))
    with tempfile.TemporaryDirectory(prefix="merged-", dir=out_dir.parent) as tmp:
        merged = Path(tmp) / "backbone"
        student.backbone.save_pretrained(str(merged))  # the full-precision baseline for "size before"
        size_before = dir_size(merged / "model.safetensors") + dir_size(out_dir / HEADS_FILE)
        if fmt == FORMAT_AWQ:
            info = export_awq(merged, tokenizer, calibration_texts, out_dir / "backbone", group_size=group_size,
                              max_calibration_samples=max_calibration_samples)
        else:
            info = export_int8(merged, out_dir / "backbone")
    shutil.copytree(artifact_dir / "tokenizer", out_dir / "tokenizer")
    for name in ("config.json", "kb.json", "brands.json"):
        shutil.copy2(artifact_dir / name, out_dir / name)
    if (artifact_dir / PLAIN_WORDS_FILE).exists():  # artifacts trained before it have none
        shutil.copy2(artifact_dir / PLAIN_WORDS_FILE, out_dir / PLAIN_WORDS_FILE)
    weight_files = [p for p in (out_dir / "backbone").iterdir() if p.suffix in (".safetensors", ".pt")]
    size_after = sum(p.stat().st_size for p in weight_files) + dir_size(out_dir / HEADS_FILE)
    manifest = {**info, "source": str(artifact_dir), "backbone_type": student.backbone.config.model_type,
                "size_before_bytes": size_before, "size_after_bytes": size_after,
                "size_ratio": round(size_before / size_after, 3) if size_after else None}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def _load_heads(student, state: dict) -> None:
    """Head by head: a quantised backbone's modules insist on their own keys even with strict=False."""
    children = dict(student.named_children())
    unexpected = [k for k in state if k.split(".", 1)[0] not in children or k.startswith("backbone.")]
    if unexpected:
        raise ExportError(f"heads do not fit this student: unexpected {unexpected[:5]}")
    for name, module in children.items():
        if name == "backbone":
            continue
        prefix = f"{name}."
        own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not own and not any(True for _ in module.parameters()):
            continue
        module.load_state_dict(own, strict=True)


def load_exported(export_dir: str | Path, device: str = "cpu"):
    """A StudentPredictor whose backbone is the quantised one and whose heads are the trained ones."""
    from safetensors.torch import load_file

    from modeling.student.encoding import Featurizer
    from modeling.student.model import StudentModel
    from modeling.student.predict import StudentPredictor, load_plain_words
    from modeling.student.train import load_tokenizer

    export_dir = Path(export_dir)
    if not (export_dir / MANIFEST).exists():
        raise ExportError(f"{export_dir} is not an export (no {MANIFEST})")
    cfg, brands, index = _load_student_parts(export_dir)
    backbone = load_backbone(export_dir / "backbone", device)
    student = StudentModel(backbone, len(brands), cfg)
    _load_heads(student, load_file(str(export_dir / HEADS_FILE)))
    student.to(device).eval()
    tokenizer = load_tokenizer(str(export_dir / "tokenizer"))
    featurizer = Featurizer.for_config(tokenizer, index, cfg)
    return StudentPredictor(student, featurizer, index, brands, cfg, device, plain_words=load_plain_words(export_dir))


# -- evaluation and the gate -----------------------------------------------------------------------

def _rounded(figures: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}


def span_f1_gate(before: dict, after: dict, max_drop: float = MAX_SPAN_F1_DROP) -> tuple[bool, float]:
    """(passes, drop): drop = span F1 lost, in points of F1 (0..1 scale); passes when drop ≤ max_drop."""
    drop = float(before["span_f1"]) - float(after["span_f1"])
    return drop <= max_drop + 1e-9, drop


def evaluate_export(reference, exported, rows: list[dict], *, speed_texts: list[str] | None = None,
                    max_drop: float = MAX_SPAN_F1_DROP, measure: bool = True) -> dict:
    """Both predictors on the same gold rows (the generation's test split): metrics, deltas, speed, gate."""
    from modeling.metrics import evaluate

    texts = [r["text"] for r in rows]
    before = _rounded(evaluate(rows, reference.predict(texts)))
    after = _rounded(evaluate(rows, exported.predict(texts)))
    passed, drop = span_f1_gate(before, after, max_drop)
    deltas = {k: round(after[k] - before[k], 4) for k in before
              if isinstance(before.get(k), float) and isinstance(after.get(k), float)}
    out = {"before": before, "after": after, "deltas": deltas, "span_f1_drop": round(drop, 4),
           "max_span_f1_drop": max_drop, "passed": passed, "test_posts": len(rows)}
    if measure:
        sample = speed_texts or texts
        sample = [t for t in sample if t] or ["empty"]
        sb, sa = (measure_speed(p.predict, sample, single=20, batch=32, repeats=3) for p in (reference, exported))
        out.update(latency_p50_ms_before=sb["latency_ms_p50"], latency_p50_ms_after=sa["latency_ms_p50"],
                   posts_per_s_before=sb["throughput_posts_s"], posts_per_s_after=sa["throughput_posts_s"],
                   speedup=(round(sa["throughput_posts_s"] / sb["throughput_posts_s"], 3)
                            if sb["throughput_posts_s"] and sa["throughput_posts_s"] else None),
                   threads=torch.get_num_threads())
    return out
