"""The gazetteer's Aho-Corasick prefilter finds exactly what the plain search finds (kb/gazetteer.py)."""

from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path

import pytest

from kb.gazetteer import Gazetteer, _normalized_chars
from kb.linking import BRAND_SUFFIXES, BrandEntry, BrandIndex, normalize
from modeling.student.kbsnap import index_from_rows, rows_from_csv, with_cjk_aliases

DEMO = Path(__file__).resolve().parent.parent.parent / "data" / "demo"


@pytest.fixture(scope="module")
def demo_index():
    return index_from_rows(with_cjk_aliases(rows_from_csv(DEMO / "kb_brands.csv", DEMO / "kb_aliases_extra.csv")))


@pytest.fixture(scope="module")
def demo_texts():
    return [row["text"] for path in sorted(DEMO.glob("*.jsonl"))
            for row in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if "text" in row]


def found(gazetteer, text):
    return [(m.start, m.end, m.text, m.brand) for m in gazetteer.find(text)]


def test_same_matches_as_the_plain_search_on_every_demo_post(demo_index, demo_texts):
    fast, plain = Gazetteer(demo_index), Gazetteer(demo_index, prefilter=False)
    differ = [t for t in demo_texts if found(fast, t) != found(plain, t)]
    assert not differ, differ[:5]
    # Not vacuous: the prefilter ran on nearly every post, and they name many brands.
    assert sum(_normalized_chars(t) is not None for t in demo_texts) > 0.99 * len(demo_texts)
    assert sum(len(plain.find(t)) for t in demo_texts) > 1000


HARD = [
    "obsessed with my new #esteelauder ✨✨ and @maccosmetics 💄",
    "Este\u0301e Lauder and L'Ore\u0301al Paris, written with combining accents",  # NFD
    "Estée Lauder and L'Oréal Paris, precomposed",
    "ＣＥＲＡＶＥ cream and ＳＫ－ＩＩ essence (full width)",
    "雅诗兰黛小棕瓶 vs 兰蔻粉水, 回购 LANEIGE 라네즈 립 마스크",
    "\u1105\u1161\u1102\u1166\u110c\u1173 conjoining jamo next to laneige",  # Hangul written as jamo
    "Kiehl's cream, Clinique's toner, CLINIQUE’S serum, kiehls",
    "@fentybeauty #fentybeautyofficial #laroche_posay @somebymi_official",
    "Dior💄Chanel🍒NARS✨ glued to emoji, ﬁnally a ligature, Straße, İstanbul",
    "e.l.f. cosmetics and NYX Professional Makeup and too faced cosmetics",
    "🤍🫶🏽 👩🏿‍🦱 no brand at all, only emoji and ZWJ sequences",
    "",
    "   ",
]


@pytest.mark.parametrize("text", HARD)
def test_same_matches_on_hard_writing(demo_index, text):
    assert found(Gazetteer(demo_index), text) == found(Gazetteer(demo_index, prefilter=False), text)


def test_same_matches_on_random_mixes_of_names_and_noise(demo_index):
    rng = random.Random(7)
    names = sorted({e.canonical_name for e in demo_index.by_id.values()})
    noise = ["", " ", "  ", "#", "@", "'s", "’s", "-", ".", "_", "✨", "💄", "👩🏿‍🦱", "雅诗", "라네즈", "\u0301",
             "\u1161", "ß", "ﬁ", "Ⅻ", "２", "\n", *BRAND_SUFFIXES, " Beauty", " Paris", " Cosmetics", "the", "x"]
    fast, plain = Gazetteer(demo_index), Gazetteer(demo_index, prefilter=False)
    texts = []
    for _ in range(2000):
        parts = []
        for _ in range(rng.randint(1, 8)):
            name = rng.choice(names)
            name = rng.choice([name, name.lower(), name.upper(), name.replace(" ", ""),
                               unicodedata.normalize("NFD", name)])
            parts.append(rng.choice(noise) + name + rng.choice(noise))
        texts.append(rng.choice(["", " ", " and "]).join(parts))
    differ = [t for t in texts if found(fast, t) != found(plain, t)]
    assert not differ, differ[:5]
    assert sum(bool(plain.find(t)) for t in texts) > 1000
    assert sum(_normalized_chars(t) is not None for t in texts) > 500  # the rest take the plain search


def test_a_span_key_is_a_slice_of_the_per_character_normalisation(demo_texts):
    rng = random.Random(3)
    checked = 0
    for text in demo_texts[::5]:
        chars = _normalized_chars(text)
        if chars is None:
            continue
        keys, offsets = chars
        for _ in range(10):
            a = rng.randrange(len(text) + 1)
            b = rng.randrange(a, len(text) + 1)
            assert keys[offsets[a]:offsets[b]] == normalize(text[a:b]), text[a:b]
            checked += 1
    assert checked > 5000


@pytest.mark.parametrize("text", ["Este\u0301e", "\u1105\u1161", "ka\u0bbe"])
def test_characters_that_join_their_neighbour_take_the_plain_search(text):
    # normalize("\u1105\u1161") is one syllable, "라": character by character it would be two jamo.
    assert _normalized_chars(text) is None


def test_a_kb_edit_is_matched_by_the_gazetteer_of_the_new_index():
    before = BrandIndex({"glossier": BrandEntry(1, "Glossier", "makeup", False)})
    after = BrandIndex({**before.by_key, "rhode": BrandEntry(2, "rhode", "skincare", False)})  # a KB edit
    text = "rhode and glossier"
    assert [m.text for m in Gazetteer(before).find(text)] == ["glossier"]
    assert [m.text for m in Gazetteer(after).find(text)] == ["rhode", "glossier"]
