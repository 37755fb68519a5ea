"""What the student does to read context rather than a dictionary: mention replacement, handle words,
and the metrics that measure it (unseen-brand recall, per-platform F1)."""

from __future__ import annotations

import random

from kb.linking import normalize
from modeling.metrics import span_prf_by_group, unseen_brand_scores
from modeling.student.pipeline import drop_gazetteer
from modeling.student.text import CJK, Example, PoolName, invented_name, swap_mentions, words
from modeling.student.train import label_keys, name_pools

from .student_factories import tiny_index

POOL = [PoolName("Tower 28", "Tower 28", "makeup"), PoolName("Charlotte Tilbury", "Charlotte Tilbury", "makeup"),
        PoolName("e.l.f.", "e.l.f.", "makeup"), PoolName("Dr. Jart+", "Dr. Jart+", "skincare")]
CJK_POOL = [PoolName("花西子", "Florasis", "makeup"), PoolName("完美日记", "Perfect Diary", "makeup")]


def _example(text: str, mentions: list[tuple[str, str]]) -> Example:
    spans, cursor = [], 0
    for written, brand in mentions:
        start = text.index(written, cursor)
        spans.append({"start": start, "end": start + len(written), "text": written, "brand": brand,
                      "category": "makeup", "brand_key": normalize(brand)})
        cursor = start + len(written)
    return Example(id="p1", text=text, spans=spans, is_beauty=True)


POSTS = [
    _example("ok the @rarebeauty blush 😍😍 is one dot #rarebeauty and NARS too", [
        ("rarebeauty", "Rare Beauty"), ("rarebeauty", "Rare Beauty"), ("NARS", "NARS")]),
    _example("兰蔻粉水 vs 雅诗兰黛🔥哪个更适合干皮 Dior也不错", [
        ("兰蔻", "Lancôme"), ("雅诗兰黛", "Estée Lauder"), ("Dior", "Dior")]),
    _example("💄💄maybelline sky high mascara💋 > l'oreal ✨", [("maybelline", "Maybelline"), ("l'oreal", "L'Oréal Paris")]),
]


def test_mention_replacement_keeps_offsets_exact_around_emoji_and_cjk():
    swapped_any = 0
    for post in POSTS:
        for seed in range(60):
            out = swap_mentions(post, random.Random(seed), POOL, CJK_POOL, p=0.9, invented=0.3)
            assert len(out.spans) == len(post.spans)
            for old, new in zip(post.spans, out.spans):
                assert out.text[new["start"]:new["end"]] == new["text"]  # offsets exact
                if new.get("swapped"):
                    swapped_any += 1
                    assert new["brand_key"] == "" and normalize(new["text"]) != normalize(old["text"])
                    assert bool(CJK.search(new["text"])) == bool(CJK.search(old["text"]))  # CJK for CJK
                else:
                    assert new["text"] == old["text"]
            # Everything outside the spans is the post's own text, in order.
            outside = [out.text[a["end"]:b["start"]] for a, b in zip(out.spans, out.spans[1:])]
            assert outside == [post.text[a["end"]:b["start"]] for a, b in zip(post.spans, post.spans[1:])]
            assert out.text[:out.spans[0]["start"]] == post.text[:post.spans[0]["start"]]
            assert out.text[out.spans[-1]["end"]:] == post.text[post.spans[-1]["end"]:]
    assert swapped_any > 100


def test_mention_replacement_writes_names_the_way_the_post_does():
    post = POSTS[0]
    forms = [swap_mentions(post, random.Random(seed), POOL, [], p=1.0, invented=0.0) for seed in range(40)]
    for out in forms:
        handle, hashtag = out.spans[0], out.spans[1]
        # One brand, one stand-in: "@rarebeauty ... #rarebeauty" stays one brand in the copy.
        assert handle["brand"] == hashtag["brand"]
        for span in (handle, hashtag):  # handle and hashtag bodies are compact
            assert " " not in span["text"] and "." not in span["text"]
    lower = swap_mentions(POSTS[2], random.Random(3), POOL, [], p=1.0, invented=0.0)
    assert lower.spans[0]["text"] == lower.spans[0]["text"].lower()
    assert swap_mentions(POSTS[0], random.Random(0), POOL, CJK_POOL, p=0.0) is POSTS[0]


def test_invented_names_are_new_words():
    rng = random.Random(1)
    names = {invented_name(rng) for _ in range(200)}
    assert len(names) > 150 and all(n[0].isupper() for n in names)


def test_made_up_cjk_names_also_take_the_corpus_characters():
    from modeling.student.train import plain_cjk_chars

    common = "的是了我不在有这个你们也很就都和一上用好到说要会着没看还天地"  # 30: the commonest are skipped
    posts = [_example("兰蔻" + common * 10 + "粉霜服帖" * 3 + "兰蔻" * 5 + "毛", [("兰蔻", "Lancôme")] * 6)]
    chars = plain_cjk_chars(posts, min_count=3)
    assert chars == sorted("粉霜服帖")  # not the labelled 兰蔻, not the 30 commonest, not 毛 (seen once)
    post = POSTS[1]
    made = []
    for seed in range(80):
        out = swap_mentions(post, random.Random(seed), POOL, CJK_POOL, p=1.0, invented=1.0, cjk_chars=chars)
        for new in out.spans:
            assert out.text[new["start"]:new["end"]] == new["text"]
            if new.get("swapped") and CJK.search(new["text"]):
                made.append(new["text"])
    from_corpus = [n for n in made if set(n) <= set(chars)]
    from_names = [n for n in made if set(n) <= set("花西子完美日记")]
    assert len(from_corpus) > len(made) / 4 and len(from_names) > len(made) / 4  # about half each


def test_swapped_spans_hide_their_gazetteer_feature_more_often():
    from modeling.student.encoding import Encoded

    text = "Maybelline mascara and Maybelline liner"
    ex = _example(text, [("Maybelline", "Maybelline"), ("Maybelline", "Maybelline")])
    ex.spans[1]["swapped"] = True
    ws = words(text)  # one token per word is enough for the feature mask
    enc = Encoded(text, list(range(len(ws))), ws, list(range(len(ws))), ws, [1, 0, 0, 1, 0], [0] * len(ws),
                  [(0, len(ws))])
    first_hidden = second_hidden = 0
    for seed in range(300):
        out = drop_gazetteer(enc, ex.spans, random.Random(seed), 0.1, 0.9)
        first_hidden += out.gaz[0] == 0
        second_hidden += out.gaz[3] == 0
    assert first_hidden < 60 and second_hidden > 240


def test_name_pools_take_kb_names_lexicon_forms_and_cjk_aliases_apart():
    pools = name_pools(tiny_index(), [])
    latin, cjk = pools.latin, pools.cjk
    assert latin and all(not CJK.search(n.text) for n in latin)
    assert any(n.text == "Estée Lauder" for n in latin)
    assert all(CJK.search(n.text) for n in cjk)


def test_handles_split_at_underscores_into_words():
    text = "@somebymi_official and @anua_kr, #skin1004 雅诗"
    assert [text[a:b] for a, b in words(text)] == ["somebymi", "official", "and", "anua", "kr", "skin1004", "雅", "诗"]


def test_unseen_brand_scores_count_only_what_the_model_was_not_told():
    gold = [{"brands": [{"start": 0, "end": 5, "text": "Anua", "brand": "Anua"},
                        {"start": 10, "end": 14, "text": "NARS", "brand": "NARS"}]},
            {"brands": [{"start": 3, "end": 9, "text": "Rhode", "brand": "rhode"}]}]
    pred = [{"brands": [{"start": 0, "end": 5, "text": "Anua"}, {"start": 10, "end": 14, "text": "NARS"}]},
            {"brands": [{"start": 20, "end": 25, "text": "Glowy"}]}]
    scores = unseen_brand_scores(gold, pred, {"nars"}, normalize)
    assert scores == {"unseen_mentions": 2, "unseen_found": 1, "unseen_recall": 0.5, "unseen_predicted": 2,
                      "unseen_precision": 0.5}
    by = span_prf_by_group(gold, pred, ["tiktok", "xiaohongshu"])
    assert by["tiktok"]["span_f1"] == 1.0 and by["xiaohongshu"]["span_f1"] == 0.0 and by["tiktok"]["posts"] == 1


def test_label_keys_hold_forms_and_brands():
    assert label_keys(POSTS[:1]) == {"rarebeauty", "nars"}


def test_invented_names_are_built_from_plain_words_as_well_as_syllables():
    rng = random.Random(4)
    plain = ["summer", "fridays", "glow", "recipe", "tower"]
    names = [invented_name(rng, plain) for _ in range(300)]
    from_words = [n for n in names if n.split()[0].lower() in plain]
    assert 100 < len(from_words) < 220  # about half
    assert any(len(n.split()) >= 2 and all(w.lower() in plain for w in n.split()[:2]) for n in from_words)
    assert all(n[0].isupper() for n in names)


def test_plain_words_leave_out_labelled_words_common_words_and_single_cjk_characters():
    from modeling.student.train import plain_word_set, plain_words

    posts = [_example("glycolic acid in the Fresh toner, glycolic again 兰蔻的彩妆", [("Fresh", "Fresh"), ("兰蔻", "Lancôme")]),
             _example("fresh glycolic from Fresh, fresh air 彩妆，兰蔻兰蔻", [("Fresh", "Fresh")]),
             _example("glycolic primer, Fresh primer primer 彩妆 兰蔻", [("Fresh", "Fresh")])]
    plain = plain_word_set(posts)
    assert {"glycolic", "primer", "彩妆"} <= plain  # Chinese words as jieba cuts them
    assert "fresh" not in plain and "兰蔻" not in plain  # labelled 3 times of 5, once of 4: a brand's words
    assert not any(len(w) == 1 and CJK.match(w) for w in plain)  # 的: a character is no word of its own
    assert "glycolic" not in plain_words(posts, tiny_index(), min_count=3)  # among the commonest: skipped


def test_kb_decoding_drops_added_spans_that_are_product_lines_single_cjk_characters_or_plain_words():
    from kb.gazetteer import Gazetteer
    from modeling.student.config import StudentConfig
    from modeling.student.encoding import Encoded
    from modeling.student.predict import StudentPredictor

    index = tiny_index()
    text = "Clinique Moisture Surge, then Glycolic Acid and Brasiox serum, 毛 and 毛戈平, Clinique's Even Better"
    matches = tuple(Gazetteer(index).find(text))
    assert [m.text for m in matches] == ["Clinique", "Clinique"]
    enc = Encoded(text, [], [], [], words(text), [], [], [], matches)
    predictor = StudentPredictor(None, None, index, [], StudentConfig(), plain_words={"glycolic", "acid"})

    def added(name):
        start = text.rindex(name) if CJK.search(name) else text.index(name)
        return {"start": start, "end": start + len(name), "text": name, "confidence": 0.9}

    proposed = [added(n) for n in ("Moisture Surge", "Glycolic Acid", "Brasiox", "毛", "毛戈平", "Even")]
    proposed[3]["start"] = text.index("毛")
    proposed[3]["end"] = proposed[3]["start"] + 1
    kept = [s["text"] for s in predictor._with_kb(enc, proposed, 0.5)]
    assert kept == ["Clinique", "Brasiox", "毛戈平", "Clinique"]
    assert [s["text"] for s in predictor._with_kb(enc, proposed, 0.95)] == ["Clinique", "Clinique"]  # below the threshold


def test_kb_decoding_drops_added_spans_inside_an_ingredient_list():
    from modeling.student.config import StudentConfig
    from modeling.student.encoding import Encoded
    from modeling.student.predict import StudentPredictor, ingredient_lists

    text = ("Loving my Brasiox toner!\nIngredients: Water, Isocetyl Stearate, Glycerin, Cetyl Alcohol, Camellia "
            "Sinensis Leaf Extract\nBrasiox again. Key ingredients: Camellia and Glycerin")
    assert ingredient_lists(text) == [(text.index(" Water"), text.index("\nBrasiox again"))]  # 2nd: not a list
    enc = Encoded(text, [], [], [], words(text), [], [], [], ())
    predictor = StudentPredictor(None, None, tiny_index(), [], StudentConfig())

    def added(name, nth=0):
        start = -1
        for _ in range(nth + 1):
            start = text.index(name, start + 1)
        return {"start": start, "end": start + len(name), "text": name, "confidence": 0.9}

    proposed = [added("Brasiox"), added("Isocetyl"), added("Camellia"), added("Brasiox", 1), added("Camellia", 1)]
    kept = [(s["text"], s["start"]) for s in predictor._with_kb(enc, proposed, 0.5)]
    assert kept == [(s["text"], s["start"]) for s in (proposed[0], proposed[3], proposed[4])]


def test_characters_the_vocabulary_cannot_write_get_their_own_feature(tmp_path):
    import json

    from modeling.student.config import StudentConfig, default_backbone
    from modeling.student.encoding import Featurizer, char_bucket
    from modeling.student.train import load_tokenizer

    tokenizer = load_tokenizer(default_backbone())
    text = "底妆用毛戈平 and Dior 平"
    enc = Featurizer(tokenizer, tiny_index(), max_window=64, stride=48, char_buckets=4096).encode(text)
    unk = [text[s:e] for i, (s, e) in zip(enc.input_ids, enc.offsets) if i == tokenizer.unk_token_id]
    assert "毛" in unk and "平" not in unk  # MiniLM's vocabulary writes 毛 as [UNK], 平 as itself
    for i, (s, e), c in zip(enc.input_ids, enc.offsets, enc.chars):
        assert c == (char_bucket(text[s], 4096) if i == tokenizer.unk_token_id else 0)
    assert len({c for c in enc.chars if c}) == len(set(unk))  # distinct characters, distinct buckets here
    off = Featurizer(tokenizer, tiny_index(), max_window=64, stride=48).encode(text)
    assert off.chars is None
    # An artifact trained before the setting existed loads with it off; a new config has it on.
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 1.0}))
    assert StudentConfig.load(tmp_path / "config.json").char_buckets == 0
    assert StudentConfig.from_dict({"epochs": 1.0}).char_buckets == StudentConfig().char_buckets > 0


def test_chinese_words_are_jiebas_words_of_two_characters_or_more():
    from modeling.student.text import chinese_words

    text = "底妆用的是毛戈平的光感粉霜 and Fenty, 理肤泉B5修复霜"
    cut = [text[a:b] for a, b in chinese_words(text)]
    assert "毛戈平" in cut and "理肤泉" in cut and "光感" in cut
    assert "的" not in cut and "Fenty" not in cut  # one character, or not Han: the plain words stay
    assert all(a < b <= c for (a, b), (c, _) in zip(chinese_words(text), chinese_words(text)[1:]))
    assert chinese_words("Fenty and Rare Beauty") == ()


def test_everyday_chinese_words_are_not_new_brands():
    from modeling.student.text import common_chinese_word

    assert common_chinese_word("医生") and common_chinese_word("美国") and common_chinese_word("颜色")
    assert not any(common_chinese_word(w) for w in ("毛戈平", "理肤泉", "卡姿兰", "欧莱雅", "迪奥", "医", "Dior"))


def test_decoding_snaps_a_chinese_name_to_its_word():
    """The tagger is often sure of one character of a Chinese name only, or starts it twice: decoding
    takes jieba's word (理肤泉, 欧莱雅) whole, and never joins the characters around it."""
    import torch

    from modeling.student.config import default_backbone
    from modeling.student.encoding import Featurizer
    from modeling.student.pipeline import decode_spans, decoding_units
    from modeling.student.train import load_tokenizer

    text = "回购了理肤泉喷雾，还有欧莱雅眼霜"
    enc = Featurizer(load_tokenizer(default_backbone()), tiny_index(), max_window=64, stride=48).encode(text)
    units = [text[a:b] for _, a, b in decoding_units(enc)]
    assert "理肤泉" in units and "欧莱雅" in units and "喷雾" in units
    logp = torch.full((len(enc.input_ids), 3), -5.0)
    logp[:, 0] = 0.0

    def tag(char: str, label: int):
        (t,) = [t for t, (a, b) in enumerate(enc.offsets) if text[a:b] == char]
        logp[t] = torch.tensor([-5.0, 0.0, -5.0] if label == 1 else [-5.0, -5.0, 0.0])

    tag("泉", 2)  # only the last character of 理肤泉 is inside
    tag("欧", 1)
    tag("雅", 1)  # 欧莱雅 begun twice
    assert [s["text"] for s in decode_spans(enc, logp, tiny_index(), "any")] == ["理肤泉", "欧莱雅"]
    assert [s["text"] for s in decode_spans(enc, logp, tiny_index(), "first")] == ["欧莱雅"]
