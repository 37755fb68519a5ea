"""Small, seeded models for the export tests: a tiny Qwen2 with a locally trained BPE tokenizer, and
student artifacts built from it (or from the CPU backbone) without any download."""

from __future__ import annotations

import json
from pathlib import Path

import torch

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"


def gold_rows(n: int | None = None) -> list[dict]:
    with open(DEMO / "gold_seed.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return rows[:n] if n else rows


def kb_index():
    from modeling.student.kbsnap import index_from_rows, rows_from_csv

    return index_from_rows(rows_from_csv(DEMO / "kb_brands.csv"))


def tiny_tokenizer(texts: list[str], vocab_size: int = 600):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")


def tiny_qwen_dir(path: Path, texts: list[str], seed: int = 0) -> Path:
    """A randomly initialised 2-layer Qwen2 (hidden 64) saved like a Hugging Face checkpoint."""
    from transformers import AutoModel, Qwen2Config

    tokenizer = tiny_tokenizer(texts)
    torch.manual_seed(seed)
    config = Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=256,
                         pad_token_id=tokenizer.pad_token_id)
    model = AutoModel.from_config(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def trained_student(out_dir: Path, backbone: str, rows: list[dict], *, epochs: float = 3.0, **overrides) -> Path:
    """A student trained (briefly, seeded) on `rows`; returns the artifact directory."""
    from modeling.student.config import StudentConfig
    from modeling.student.demo import gold_examples
    from modeling.student.train import train_student

    cfg = StudentConfig(backbone=backbone, epochs=epochs, batch_size=8, max_window=64, window_stride=48,
                        lora_r=4, lora_alpha=8, unfreeze_layers=1, eval_every_epochs=epochs, patience=99,
                        checkpoint_every_steps=10_000, lr_scale=overrides.pop("lr_scale", 4.0), **overrides)
    examples = gold_examples(rows)
    train_student(cfg, examples, examples[:8], kb_index(), out_dir)
    return out_dir


def tag_logits(predictor, texts: list[str]) -> list[list[list[float]]]:
    """Per-token BIO logits of a StudentPredictor (fp or exported): the finest thing two models can agree on."""
    from modeling.student.model import unwrap
    from modeling.student.pipeline import collate

    student = unwrap(predictor.model)
    encs = [predictor.featurizer.encode(t) for t in texts]
    batch = collate(predictor.featurizer, encs)
    with torch.no_grad():
        out = student.post_outputs(student.encode(batch), batch["post_mask"])
    return [out["tag_logits"][i, : len(e.input_ids)].tolist() for i, e in enumerate(encs)]


# Run by the fresh-process reload test: python -c RELOAD_SCRIPT EXPORT_DIR TEXTS_JSON → JSON on stdout.
RELOAD_SCRIPT = r"""
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beautybrain_app.settings")
django.setup()
import torch
torch.set_num_threads(1)
from modeling.export import load_exported
from tests.modeling.export_factories import tag_logits
predictor = load_exported(sys.argv[1])
texts = json.loads(open(sys.argv[2]).read())
backbone = predictor.model.backbone
quantised = sorted({type(m).__name__ for m in backbone.modules() if hasattr(m, "weight_packed")
                    or type(m).__module__.startswith("torch.ao.nn.quantized")})
packed = [n for n, _ in backbone.named_parameters() if n.endswith("weight_packed")]
print(json.dumps({"logits": tag_logits(predictor, texts), "predictions": predictor.predict(texts),
                  "packed_params": packed, "quantised_modules": quantised}))
"""
