"""A tiny randomly initialised Qwen2 with a BPE tokenizer trained here on a few texts: fast student tests."""

from __future__ import annotations

from pathlib import Path

from modeling.student.kbsnap import index_from_rows
from modeling.student.text import Example

DEMO_TEXTS = [
    "my #esteelauder night serum is the best ✨",
    "Got the new @cerave cleanser and it is so gentle",
    "雅诗兰黛小棕瓶 真的好用 推荐",
    "maybelline mascara vs l'oreal which one?",
    "Fenty💄 gloss bomb is everything",
    "weather is nice today, going to the park with friends",
    "Clinique's moisturizer broke me out, switching to CeraVe",
    "I love my SK2 essence and La Mer cream",
    "football match tonight with the boys",
    "Trying ColourPop and KVD eyeshadow palettes 🔥",
] * 3


def tiny_kb_rows() -> list[dict]:
    return [
        {"canonical_name": "Estée Lauder", "category": "skincare", "aliases": ["Estee Lauder", "EsteeLauder", "雅诗兰黛"],
         "is_ambiguous": False},
        {"canonical_name": "Maybelline", "category": "makeup", "aliases": [], "is_ambiguous": False},
        {"canonical_name": "L'Oréal Paris", "category": "makeup", "aliases": ["L'Oreal", "Loreal"], "is_ambiguous": False},
        {"canonical_name": "SK-II", "category": "skincare", "aliases": ["SK2", "SKII"], "is_ambiguous": False},
        {"canonical_name": "La Mer", "category": "skincare", "aliases": [], "is_ambiguous": False},
        {"canonical_name": "CLINIQUE", "category": "skincare", "aliases": [], "is_ambiguous": False},
        {"canonical_name": "KVD Vegan Beauty", "category": "makeup", "aliases": ["KVD"], "is_ambiguous": False},
    ]


def tiny_index():
    return index_from_rows(tiny_kb_rows())


def build_tiny_qwen2(directory: Path) -> str:
    """Save a tiny Qwen2 (hidden 64, 2 layers, 4 heads, 2 kv heads) and its tokenizer; returns the path."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2Model

    directory = Path(directory)
    if (directory / "config.json").exists():
        return str(directory)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(DEMO_TEXTS * 5, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.save_pretrained(str(directory))
    config = Qwen2Config(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=fast.pad_token_id, eos_token_id=fast.eos_token_id, bos_token_id=fast.eos_token_id)
    import torch

    torch.manual_seed(0)
    Qwen2Model(config).save_pretrained(str(directory))
    return str(directory)


def labelled(text: str, *surfaces_brands: tuple[str, str, str], is_beauty: bool = True, occurrence: int = 0) -> Example:
    spans = []
    for surface, brand, category in surfaces_brands:
        start = text.index(surface)
        spans.append({"start": start, "end": start + len(surface), "text": surface, "brand": brand,
                      "category": category})
    return Example(id=f"t{abs(hash(text)) % 10**8}", text=text, spans=spans, is_beauty=is_beauty)


def social_examples() -> list[Example]:
    """Posts written the way TikTok / Instagram / Xiaohongshu write brands."""
    return [
        labelled("my #esteelauder night serum is the best ✨", ("esteelauder", "Estée Lauder", "skincare")),
        labelled("Got the new @cerave cleanser and it is so gentle", ("cerave", "CeraVe", "skincare")),
        labelled("雅诗兰黛小棕瓶 真的好用 推荐", ("雅诗兰黛", "Estée Lauder", "skincare")),
        labelled("maybelline mascara vs l'oreal which one?", ("maybelline", "Maybelline", "makeup"),
                 ("l'oreal", "L'Oréal Paris", "makeup")),
        labelled("Fenty💄 gloss bomb is everything", ("Fenty", "Fenty Beauty", "makeup")),
        labelled("weather is nice today, going to the park with friends", is_beauty=False),
        labelled("I love my SK2 essence and La Mer cream", ("SK2", "SK-II", "skincare"), ("La Mer", "La Mer", "skincare")),
        labelled("Trying ColourPop and KVD eyeshadow palettes 🔥", ("ColourPop", "ColourPop", "makeup"),
                 ("KVD", "KVD Vegan Beauty", "makeup")),
    ]
