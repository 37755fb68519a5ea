"""Does the real student find brands nobody told it about? Kosas and Tirtir are held out: every post that
names them leaves training, and their names leave the KB; Medicube and Torriden are in no file. A student trained on the rest of the demo data
(the shipped MiniLM, the product's recipe, a shorter schedule) must find them in posts written here in each
platform's style, without calling the plain sentences around them brands. (~3 min of CPU.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from kb.linking import normalize
from modeling.student.config import StudentConfig
from modeling.student.demo import gold_examples, hash_fold, read_jsonl, silver_examples
from modeling.student.kbsnap import index_from_rows, rows_from_csv, with_cjk_aliases
from modeling.student.predict import StudentPredictor
from modeling.student.train import train_student

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"
# Kosas and Tirtir are in the demo data: their posts and KB rows leave. Medicube and Torriden are in no file.
HELD_OUT = {normalize(n) for n in ("Kosas", "Tirtir", "TIRTIR")}
HELD_OUT_WORDS = re.compile(r"kosas|tirtir", re.IGNORECASE)
NEVER_SEEN = {normalize(n) for n in ("Medicube", "Torriden")}

# (platform, text, the held-out mention as written)
POSTS = [
    ("tiktok", "grwm using only kosas today 🤍 the revealer concealer is unreal #grwm #makeuptok", "kosas"),
    ("instagram", "Sunday reset 🌿 Torriden dive-in serum, then a cozy night in. #skincareroutine #selfcare",
     "Torriden"),
    ("twitter", "ngl the Medicube toner pads are the only thing that calmed my skin this winter", "Medicube"),
    ("youtube", "I tested TIRTIR Mask Fit Red Cushion for 30 days - honest review", "TIRTIR"),
    ("xiaohongshu", "空瓶记 Medicube的爽肤棉真的好用 推荐给油皮姐妹", "Medicube"),
    ("weibo", "终于回购了Torriden的精华 太保湿了", "Torriden"),
    ("reddit", "Has anyone tried Kosas Revealer? Thinking of switching from my old drugstore concealer.", "Kosas"),
]
PLAIN = ["going to the beach with friends this weekend, so excited", "my cat knocked my coffee over again lol"]


def _names_held_out(example) -> bool:
    return any(normalize(s.get("brand") or s["text"]) in HELD_OUT or HELD_OUT_WORDS.search(s["text"])
               for s in example.spans) or bool(HELD_OUT_WORDS.search(example.text))


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    torch.set_num_threads(2)
    gold = gold_examples(read_jsonl(DEMO / "gold_seed.jsonl"))
    social = silver_examples(read_jsonl(DEMO / "posts_social.jsonl"), read_jsonl(DEMO / "teacher_answers_social.jsonl"),
                             0.7)
    everything = [e for e in gold + social if not _names_held_out(e)]
    assert len(everything) > 1500
    val = [e for e in everything if e.kind == "gold" and hash_fold("val:" + e.id, 10) == 0]
    train = [e for e in everything if e not in val]
    rows = [r for r in with_cjk_aliases(rows_from_csv(DEMO / "kb_brands.csv"))
            if not {normalize(n) for n in [r["canonical_name"], *r["aliases"]]} & HELD_OUT]
    out = tmp_path_factory.mktemp("unseen-brand")
    cfg = StudentConfig(epochs=3.0, threads=2, eval_every_epochs=1.0, checkpoint_every_steps=1_000_000)
    train_student(cfg, train, val, index_from_rows(rows), out)
    predictor = StudentPredictor.load(out)
    assert not (HELD_OUT | NEVER_SEEN) & predictor.known_keys()  # the split is fair: nothing about them was told
    return predictor


def test_a_held_out_brand_is_found_in_each_platforms_style(student):
    preds = student.predict([text for _, text, _ in POSTS])
    found = {}
    for (platform, text, written), pred in zip(POSTS, preds):
        start = text.index(written)
        spans = {(b["start"], b["end"]): b for b in pred["brands"]}
        hit = spans.get((start, start + len(written)))
        found[platform] = hit is not None
        if hit is not None:
            assert hit["link"] not in ("exact", "alias")  # found by reading, not by a dictionary
    # Measured: 4 of 7 (Torriden and Medicube everywhere; Kosas and TIRTIR missed). The full recipe on all
    # the data does better (grouped CV: bench/student_unseen.py), but not on every name.
    assert sum(found.values()) >= 4, found


def test_the_sentences_around_them_are_not_brands(student):
    assert [p["brands"] for p in student.predict(PLAIN)] == [[], []]
