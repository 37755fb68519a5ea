"""Text helpers: words (the unit spans snap to), alignment of teacher mentions, and augmentation that
writes brands the way TikTok/Instagram/Xiaohongshu posts do (hashtags, handles, lowercase, typos,
emoji glued to names, Chinese names)."""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from kb.linking import BrandIndex, normalize
from kb.rules import CJK, HAN_RUN, HANGUL, KANA, POSSESSIVE, WORD  # noqa: F401 - WORD and CJK are used here and re-exported


@dataclass
class Example:
    """One post to train on or predict: spans are dicts with start, end, brand, category."""

    id: str
    text: str
    spans: list[dict] = field(default_factory=list)
    is_beauty: bool | None = None
    kind: str = "gold"  # gold | silver
    weight: float = 1.0
    reasoning: str = ""
    platform: str = ""


def words(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in WORD.finditer(text)]


@functools.lru_cache(maxsize=1)
def _jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba.Tokenizer()


@functools.lru_cache(maxsize=4096)
def chinese_words(text: str) -> tuple[tuple[int, int], ...]:
    """Character ranges of the Chinese words of two or more characters in `text`, as jieba cuts its runs of
    Han characters (its HMM joins characters into words its dictionary lacks): 毛戈平/的/光感/粉霜.
    Words are one character each elsewhere (kb.rules.WORD); decoding snaps spans to these instead."""
    found = []
    for m in HAN_RUN.finditer(text):
        pos = m.start()
        for piece in _jieba().cut(m.group(), HMM=True):
            if len(piece) > 1:
                found.append((pos, pos + len(piece)))
            pos += len(piece)
    return tuple(found)


# How often jieba's dictionary (60 million counted words) must have seen a word for it to be an everyday one
# (医生 4,263, 珍珠 862, 欧美 183) rather than a name: of 43 Chinese brand names in the demo data, the most
# frequent there are 迪奥 (122) and 清扬 (107); most are absent.
COMMON_CHINESE_WORD = 150


def common_chinese_word(word: str) -> bool:
    """An everyday Chinese word (jieba's dictionary frequency >= COMMON_CHINESE_WORD), not a brand name."""
    return bool(HAN_RUN.fullmatch(word)) and _jieba_freq().get(word, 0) >= COMMON_CHINESE_WORD


@functools.lru_cache(maxsize=1)
def _jieba_freq() -> dict[str, int]:
    tokenizer = _jieba()
    tokenizer.initialize()
    return tokenizer.FREQ


def units(text: str, found: list[tuple[int, int]] | None = None) -> list[tuple[int, int]]:
    """The words spans start and end on: `words` (or `found`, the words an encoding already holds), except
    that a Chinese word of several characters (`chinese_words`) is one, not one per character."""
    found = words(text) if found is None else found
    if not CJK.search(text):
        return found
    word_end = dict(chinese_words(text))
    merged: list[tuple[int, int]] = []
    open_until = -1
    for a, b in found:
        if a < open_until:  # a later character of the Chinese word the last unit started
            merged[-1] = (merged[-1][0], b)
            continue
        open_until = word_end.get(a, -1)
        merged.append((a, b))
    return merged


def strip_possessive(text: str, start: int, end: int, index: BrandIndex | None) -> int:
    """'Clinique's' → 'Clinique', but Kiehl's / Pond's stay whole when the KB knows them that way."""
    m = POSSESSIVE.search(text[start:end])
    if not m or end - start <= 2:
        return end
    if index is not None and normalize(text[start:end]) in index.by_key:
        return end
    return start + m.start()


def align_mentions(text: str, mentions: list[dict]) -> list[dict] | None:
    """Teacher mentions (text, brand, category; in order, once per occurrence) → spans with offsets, by the
    app's aligner (modeling.teacher.align), so benchmarks build the silver the app builds. None when a
    mention cannot be found (the whole answer is then unusable as a label)."""
    from modeling.teacher.align import AlignmentError, align_mentions as align

    try:
        aligned = align(text, [m.get("text") or "" for m in mentions], [m.get("brand") for m in mentions])
    except AlignmentError:
        return None
    spans = [{"start": a.start, "end": a.end, "text": a.text, "brand": m.get("brand") or "",
              "category": m.get("category") or "other"} for m, a in zip(mentions, aligned)]
    return sorted(spans, key=lambda s: s["start"])


EMOJI = ["💄", "✨", "💋", "😍", "🔥", "💅", "🌸", "❤️", "🥰", "👌"]


def _misspell(word: str, rng: random.Random) -> str:
    letters = [i for i, ch in enumerate(word) if ch.isalpha()]
    if len(letters) < 5:
        return word
    i = rng.choice(letters[1:-1])
    op = rng.random()
    if op < 0.4:
        return word[:i] + word[i + 1:]
    if op < 0.7:
        return word[:i] + word[i] + word[i:]
    j = i + 1 if i + 1 < len(word) else i - 1
    chars = list(word)
    chars[i], chars[j] = chars[j], chars[i]
    return "".join(chars)


def augment(example: Example, rng: random.Random, cjk_names: dict[str, list[str]] | None = None) -> Example:
    """A copy with each brand mention rewritten in a social-media style; offsets are recomputed."""
    if not example.spans:
        return example
    pieces: list[str] = []
    spans: list[dict] = []
    pos = 0
    out_len = 0
    lower_all = rng.random() < 0.25
    for span in sorted(example.spans, key=lambda s: s["start"]):
        before = example.text[pos:span["start"]]
        if lower_all:
            before = before.lower()
        pieces.append(before)
        out_len += len(before)
        surface = example.text[span["start"]:span["end"]]
        prefix, new, suffix = _restyle(surface, span, rng, cjk_names or {})
        if prefix and pieces and pieces[-1] and not pieces[-1][-1].isspace():
            prefix = " " + prefix
        pieces.append(prefix)
        out_len += len(prefix)
        spans.append({**span, "start": out_len, "end": out_len + len(new), "text": new})
        pieces.append(new + suffix)
        out_len += len(new) + len(suffix)
        pos = span["end"]
    rest = example.text[pos:]
    pieces.append(rest.lower() if lower_all else rest)
    return replace(example, id=example.id + "~aug", text="".join(pieces), spans=spans)


def _restyle(surface: str, span: dict, rng: random.Random, cjk_names: dict[str, list[str]]) -> tuple[str, str, str]:
    """→ (prefix outside the span, the span text, suffix outside the span)."""
    compact = re.sub(r"[\s'’.\-&]+", "", surface)
    choice = rng.random()
    cjk = cjk_names.get(span.get("brand") or "")
    if cjk and choice < 0.2:
        return "", rng.choice(cjk), rng.choice(["", "的", "!"])
    if choice < 0.25:
        return "#", compact.lower(), rng.choice(["", " ", "✨"])
    if choice < 0.4:
        return "@", compact.lower() + rng.choice(["", "", "official", "beauty"]), ""
    if choice < 0.6:
        return "", surface.lower(), ""
    if choice < 0.75:
        return "", _misspell(surface, rng), ""
    if choice < 0.87:
        return rng.choice(["", rng.choice(EMOJI)]), surface, rng.choice(EMOJI)
    if choice < 0.93:
        return "", surface.upper(), ""
    return "", surface, ""


@dataclass(frozen=True, order=True)
class PoolName:
    """A brand name that can stand in for a mention in training: as written, its brand and category."""

    text: str
    brand: str
    category: str


# Syllables for made-up brand names: a swapped-in name the backbone has never seen teaches the tagger
# that a name is a name because of where it stands ("obsessed with my ___ lip oil"), not what it spells.
_ONSETS = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "cl", "gl",
           "kr", "pr", "sk", "st", "tr", "sh", "ch", "th"]
_VOWELS = ["a", "e", "i", "o", "u", "ae", "io", "ou", "y"]
_CODAS = ["", "", "", "n", "r", "s", "x", "l", "m", "k"]
_NAME_TAILS = ["", "", "", " Beauty", " Skin", " Lab", " Cosmetics", " Studio", "ly", "ique", " & Co"]


def invented_name(rng: random.Random, plain_words: Sequence[str] = ()) -> str:
    """A made-up brand name: made of syllables ("Brasiox"), or, given the corpus's plain words, half the
    time of those, as many real brands are ("Summer Fridays", "Drunk Elephant", "Tower 28", "Fresh"): a
    name the tagger has never seen as a name, so only its place in the sentence says it is one."""
    if plain_words and rng.random() < 0.5:
        name = " ".join(w.capitalize() for w in rng.sample(plain_words, rng.choice((1, 1, 2))))
        if " " not in name and rng.random() < 0.3:
            name += rng.choice(_NAME_TAILS[3:])
    else:
        word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                       for _ in range(rng.randint(1, 2)))
        name = word.capitalize() + rng.choice(_NAME_TAILS)
    if rng.random() < 0.15:
        name += " " + str(rng.randint(1, 99))
    return name


def swap_mentions(example: Example, rng: random.Random, pool: list[PoolName], cjk_pool: list[PoolName], *,
                  p: float, invented: float = 0.3, plain_words: Sequence[str] = (),
                  cjk_chars: Sequence[str] = ()) -> Example:
    """A copy in which each mention, with probability `p`, names another brand: a name from `pool` (or a
    made-up one, with probability `invented`, from syllables or `plain_words`), written the way the mention was (#hashtag/@handle bodies
    compact, lowercase, UPPERCASE, as written); CJK mentions take CJK names. Swapped spans carry
    `swapped=True` (training hides their gazetteer feature more often) and an empty `brand_key`. Offsets
    are exact: the text is rebuilt piece by piece around the spans. Made-up CJK names recombine the
    characters of real CJK names or, half the time, `cjk_chars` (characters of the corpus's plain text)."""
    if not example.spans or p <= 0:
        return example
    pieces: list[str] = []
    spans: list[dict] = []
    pos = out_len = 0
    changed = False
    chosen: dict[tuple[str, bool], PoolName | None] = {}
    for span in sorted(example.spans, key=lambda s: s["start"]):
        if span["start"] < pos:  # overlaps the previous span: a copy cannot keep both
            continue
        before = example.text[pos:span["start"]]
        pieces.append(before)
        out_len += len(before)
        surface = example.text[span["start"]:span["end"]]
        # One stand-in per brand and script in a post: "@rarebeauty ... #rarebeauty" stays one brand.
        key = (normalize(span.get("brand") or surface), bool(CJK.search(surface)))
        if key not in chosen:
            chosen[key] = (_pick(surface, span, rng, pool, cjk_pool, invented, plain_words, cjk_chars)
                           if rng.random() < p else None)
        new = _written_as(example.text, span, surface, chosen[key], rng) if chosen[key] is not None else None
        if new is None:
            pieces.append(surface)
            spans.append({**span, "start": out_len, "end": out_len + len(surface)})
            out_len += len(surface)
        else:
            name, written = new
            changed = True
            pieces.append(written)
            spans.append({**span, "start": out_len, "end": out_len + len(written), "text": written,
                          "brand": name.brand, "category": name.category or span.get("category") or "other",
                          "brand_key": "", "swapped": True})
            out_len += len(written)
        pos = span["end"]
    if not changed:
        return example
    pieces.append(example.text[pos:])
    return replace(example, id=example.id + "~swap", text="".join(pieces), spans=spans)


def _pick(surface: str, span: dict, rng: random.Random, pool: list[PoolName], cjk_pool: list[PoolName],
          invented: float, plain_words: Sequence[str] = (), cjk_chars: Sequence[str] = ()) -> PoolName | None:
    if CJK.search(surface):
        same = [n for n in cjk_pool if _script(n.text) == _script(surface)]  # 兰蔻 → 花西子, not → キールス
        if not same:
            return None
        if rng.random() < max(invented, 0.3):  # few real names: recombine their characters, 兰 + 诗 + 颜
            # or, half the time, the corpus's own characters (毛戈平, 林清轩 are written with everyday ones):
            # only the sentence around the name then says it is one.
            plain = [c for c in cjk_chars if _script(c) == _script(surface)]
            chars = plain if plain and rng.random() < 0.5 else sorted({c for n in same for c in n.text if CJK.match(c)})
            made = "".join(rng.choice(chars) for _ in range(rng.randint(2, 4)))
            return PoolName(made, made, span.get("category") or "other")
        return rng.choice(same)
    if pool and rng.random() >= invented:
        return rng.choice(pool)
    made = invented_name(rng, plain_words)
    return PoolName(made, made, span.get("category") or "other")


def _script(text: str) -> str:
    if HANGUL.search(text):
        return "hangul"
    if KANA.search(text):
        return "kana"
    return "han"


def _written_as(text: str, span: dict, surface: str, name: PoolName, rng: random.Random) -> tuple[PoolName, str] | None:
    """`name` written the way `surface` is; None when it would not change the mention."""
    written = name.text
    if CJK.search(surface):
        return (name, written) if written != surface else None
    if CJK.search(written):
        return None
    tagged = span["start"] > 0 and text[span["start"] - 1] in "#@"
    letters = [c for c in surface if c.isalpha()]
    if tagged:  # '#rarebeauty', '@tower28beauty': no spaces or punctuation, mostly lowercase
        written = re.sub(r"[\s'’.\-&+]+", "", written)
        if surface.islower() or rng.random() < 0.85:
            written = written.lower()
    elif letters and all(c.islower() for c in letters):
        written = written.lower()
    elif len(letters) > 1 and all(c.isupper() for c in letters) and rng.random() < 0.5:
        written = written.upper()  # 'NARS' → 'TOWER 28' half the time, else as the brand writes itself
    if not written or normalize(written) == normalize(surface):
        return None
    return name, written
