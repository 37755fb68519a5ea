"""Tokenisation with offsets, per-token features (gazetteer match, casing), BIO labels, and windows.

A post is tokenised once, whole (never truncated); the encoder sees it as overlapping windows whose
states are merged back per token (model.py), so every head works on the full post."""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz import fuzz, process

from kb.gazetteer import Gazetteer, Match
from kb.linking import BrandIndex, normalize

from .config import BIO, CASE_TAGS, GAZ_TAGS
from .text import CJK, words

def char_bucket(ch: str, buckets: int) -> int:
    """1 + a stable bucket of a character among `buckets - 1` (0 is 'no character feature')."""
    return 1 + ord(ch) % (buckets - 1)


FUZZY_WORD_MIN = 5
FUZZY_WORD_CUTOFF = 86.0


@dataclass
class Encoded:
    text: str
    input_ids: list[int]
    offsets: list[tuple[int, int]]
    token_word: list[int]  # index into `words`, -1 for tokens outside any word
    words: list[tuple[int, int]]
    gaz: list[int]
    case: list[int]
    windows: list[tuple[int, int]]  # [start, end) token ranges
    # The gazetteer's matches in `text`: the feature above and KB-aware decoding read the same dictionary pass.
    matches: tuple[Match, ...] = ()
    chars: list[int] | None = None  # per token: 1 + a hash bucket of a character the vocabulary writes as [UNK]


class Featurizer:
    """Turns text into `Encoded`; holds the tokenizer, the gazetteer and the windowing settings."""

    def __init__(self, tokenizer, index: BrandIndex, *, max_window: int, stride: int, fuzzy: bool = True,
                 char_buckets: int = 0):
        self.tokenizer = tokenizer
        self.char_buckets = char_buckets
        self.unk_id = getattr(tokenizer, "unk_token_id", None)
        self.index = index
        self.gazetteer = Gazetteer(index)
        self.fuzzy = fuzzy
        self._fuzzy_keys = [k for k in index._fuzzy_keys if not CJK.search(k)]
        probe = tokenizer("a", add_special_tokens=True)["input_ids"]
        bare = tokenizer("a", add_special_tokens=False)["input_ids"]
        # Special tokens the backbone expects around a sequence ([CLS] ... [SEP] for BERT; none for Qwen2).
        self.prefix_ids = probe[: max(0, probe.index(bare[0]))] if bare and bare[0] in probe else []
        self.suffix_ids = probe[len(self.prefix_ids) + len(bare):] if bare and bare[0] in probe else []
        self.content = max(8, max_window - len(self.prefix_ids) - len(self.suffix_ids))
        self.stride = max(1, min(stride, self.content))
        self._cache: dict[str, Encoded] = {}
        self._fuzzy_seen: dict[str, bool] = {}  # word key → near a KB key? (words repeat across posts)

    @classmethod
    def for_config(cls, tokenizer, index: BrandIndex, cfg) -> "Featurizer":
        """The featurizer a StudentConfig trains and serves with (windows, fuzzy matches, character buckets)."""
        return cls(tokenizer, index, max_window=cfg.max_window, stride=cfg.window_stride, fuzzy=cfg.fuzzy_gazetteer,
                   char_buckets=cfg.char_buckets)

    def encode(self, text: str) -> Encoded:
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        offsets = [tuple(o) for o in enc["offset_mapping"]]
        ws = words(text)
        token_word = _token_words(offsets, ws, text)
        matches = tuple(self.gazetteer.find(text))
        gaz_chars = self._gazetteer_tags(text, ws, matches)
        gaz = [_token_gaz(gaz_chars, s, e, text) for s, e in offsets]
        word_case = [_case_tag(text, w) for w in ws]
        case = [word_case[w] if w >= 0 else 0 for w in token_word]
        windows = _windows(len(ids), self.content, self.stride)
        chars = None
        if self.char_buckets and self.unk_id is not None:
            chars = [char_bucket(text[s], self.char_buckets) if i == self.unk_id and e - s == 1 else 0
                     for i, (s, e) in zip(ids, offsets)]
        out = Encoded(text, ids, offsets, token_word, ws, gaz, case, windows, matches, chars)
        if len(self._cache) < 50_000:
            self._cache[text] = out
        return out

    def clear_cache(self) -> None:
        """Forget the encodings and fuzzy lookups kept so far (a benchmark times featurising new posts)."""
        self._cache.clear()
        self._fuzzy_seen.clear()

    def _gazetteer_tags(self, text: str, ws: list[tuple[int, int]], matches: tuple[Match, ...]) -> dict[int, int]:
        """char offset → GAZ tag at word starts and inside matches."""
        tags: dict[int, int] = {}
        covered = []
        for m in matches:
            covered.append((m.start, m.end))
            for i in range(m.start, m.end):
                tags[i] = GAZ_TAGS.index("I")
            tags[m.start] = GAZ_TAGS.index("B")
        if self.fuzzy and self._fuzzy_keys:
            for s, e in ws:
                if e - s < FUZZY_WORD_MIN or any(s < ce and cs < e for cs, ce in covered):
                    continue
                key = normalize(text[s:e])
                if len(key) < FUZZY_WORD_MIN or not key.isalpha():
                    continue
                if self._is_near_key(key):
                    for i in range(s, e):
                        tags[i] = GAZ_TAGS.index("FI")
                    tags[s] = GAZ_TAGS.index("FB")
        return tags

    def _is_near_key(self, key: str) -> bool:
        near = self._fuzzy_seen.get(key)
        if near is None:
            near = bool(process.extractOne(key, self._fuzzy_keys, scorer=fuzz.ratio, score_cutoff=FUZZY_WORD_CUTOFF))
            if len(self._fuzzy_seen) < 200_000:
                self._fuzzy_seen[key] = near
        return near


def _token_words(offsets, ws, text) -> list[int]:
    out = []
    w = 0
    for s, e in offsets:
        while s < e and text[s].isspace():  # byte-level BPE tokens carry their leading space
            s += 1
        while w < len(ws) and ws[w][1] <= s:
            w += 1
        out.append(w if w < len(ws) and s < e and ws[w][0] < e and s < ws[w][1] else -1)
    return out


def _token_gaz(tags: dict[int, int], s: int, e: int, text: str) -> int:
    while s < e and text[s].isspace():
        s += 1
    if s >= e:
        return 0
    return tags.get(s, 0)


def _case_tag(text: str, word: tuple[int, int]) -> int:
    w = text[word[0]:word[1]]
    letters = [c for c in w if c.isalpha()]
    if not letters or not any(c.isupper() or c.islower() for c in letters):
        return CASE_TAGS.index("none")
    if all(c.islower() for c in letters):
        return CASE_TAGS.index("lower")
    if all(c.isupper() for c in letters):
        return CASE_TAGS.index("upper")
    if letters[0].isupper() and all(c.islower() for c in letters[1:]):
        return CASE_TAGS.index("title")
    return CASE_TAGS.index("mixed")


def _windows(n: int, content: int, stride: int) -> list[tuple[int, int]]:
    if n <= content:
        return [(0, n)]
    out = []
    start = 0
    while True:
        end = min(n, start + content)
        out.append((start, end))
        if end == n:
            return out
        start += stride


def bio_labels(enc: Encoded, spans: list[dict]) -> list[int]:
    """Token labels: B on the first token that overlaps a span, I on the rest, O elsewhere."""
    labels = [BIO.index("O")] * len(enc.input_ids)
    for span in spans:
        first = True
        for t, (s, e) in enumerate(enc.offsets):
            while s < e and enc.text[s].isspace():
                s += 1
            if s < e and s < span["end"] and span["start"] < e:
                labels[t] = BIO.index("B") if first else BIO.index("I")
                first = False
    return labels


def span_token_range(enc: Encoded, start: int, end: int) -> tuple[int, int] | None:
    toks = [t for t, (s, e) in enumerate(enc.offsets) if s < e and s < end and start < e]
    return (toks[0], toks[-1] + 1) if toks else None
