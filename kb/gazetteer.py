"""Dictionary matching of KB aliases on token boundaries: the cold-start labeller and the baseline.

Django-free: it works on a `BrandIndex` (kb.linking), so the student's data pipeline can use it too.
Rules: word boundaries; hashtags and handles match on the part after '#'/'@' ('#esteelauder');
a grammatical possessive stays outside the span ("Clinique's" → "Clinique") unless it is part of
the alias (Kiehl's); longest match first, left to right, no overlaps; aliases written in CJK match
as substrings (no spaces to mark boundaries); ambiguous brands need evidence (kb.linking).

Speed: most tokens start no alias. An Aho-Corasick automaton of the alias keys runs once over the post
normalised character by character, and the longest-match search runs only at the tokens where a key starts
(a handle's key + brand suffix, 'maccosmetics', starts with the key). A post with a character whose
normalisation may depend on its neighbours (combining marks, conjoining jamo) takes the plain search.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from itertools import accumulate

import ahocorasick

from kb.linking import BrandEntry, BrandIndex, has_evidence, normalize
from kb.rules import CJK as _CJK
from kb.rules import POSSESSIVE as _POSSESSIVE
from kb.rules import WORD as _WORD

MAX_ALIAS_TOKENS = 6
# LABELING.md: "Beauty"/"Cosmetics"/"Paris"/"Professional" belong to the span when written as part of
# the name right there; capitalisation is that evidence ("Fenty Beauty"), except for "cosmetics",
# which after a brand name is never a generic word.
NAME_SUFFIXES = {"cosmetics", "beauty", "paris", "professional"}


@dataclass(frozen=True)
class Match:
    start: int
    end: int
    text: str
    brand: BrandEntry

    def as_span(self) -> dict:
        return {
            "start": self.start, "end": self.end, "text": self.text, "brand": self.brand.canonical_name,
            "brand_id": self.brand.brand_id, "category": self.brand.category, "confidence": 1.0,
        }


class Gazetteer:
    def __init__(self, index: BrandIndex, *, prefilter: bool = True):
        """`prefilter=False` is the plain search: every token is tried (the reference the prefilter is tested
        against)."""
        self.index = index
        self.automaton = _build_automaton(index) if prefilter else None
        self.cjk_aliases = sorted((k for k in index.by_key if _CJK.search(k)), key=len, reverse=True)

    def find(self, text: str) -> list[Match]:
        tokens = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        may_start = self._may_start(text, tokens) if self.automaton is not None and tokens else None
        found: list[Match] = []
        i = 0
        while i < len(tokens):
            if may_start is not None and tokens[i][0] not in may_start:
                i += 1  # no key starts here: the search would find nothing
                continue
            match = self._longest_at(text, tokens, i)
            if match is None:
                i += 1
                continue
            m, i = match
            if i < len(tokens) and not _POSSESSIVE.search(m.text) and _is_name_suffix(text, m.end, tokens[i]):
                # "NYX Cosmetics", "L'Oreal Paris": the suffix written right after the name is part of it.
                m = Match(m.start, tokens[i][1], text[m.start:tokens[i][1]], m.brand)
                i += 1
            found.append(m)
        found.extend(self._cjk_matches(text, found))
        return sorted(found, key=lambda m: m.start)

    def _may_start(self, text: str, tokens: list[tuple[int, int]]) -> set[int] | None:
        """The offsets of the tokens where an alias key starts once normalised; None when this text cannot
        be prefiltered (then every token is tried)."""
        chars = _normalized_chars(text)
        if chars is None:
            return None
        keys, offsets = chars
        starts = {end - n + 1 for end, n in self.automaton.iter(keys)} if len(self.automaton) else set()
        return {start for start, _ in tokens if offsets[start] in starts}

    def _longest_at(self, text: str, tokens: list[tuple[int, int]], i: int) -> tuple[Match, int] | None:
        start = tokens[i][0]
        for j in range(min(len(tokens), i + MAX_ALIAS_TOKENS) - 1, i - 1, -1):
            end = tokens[j][1]
            if _CJK.search(text[start:end]):
                continue
            for cut_end in (end, _strip_possessive(text, start, end)):
                if cut_end is None:
                    continue
                surface = text[start:cut_end]
                key = normalize(surface)
                entry = self.index.by_key.get(key)
                if entry is None and j == i:  # handles/hashtags: '@maccosmetics', '#fentybeauty'
                    entry = self.index.lookup_suffixed(key)
                if entry is None:
                    continue
                if self.index.needs_evidence(key, entry) and not has_evidence(as_written(text, start, cut_end), entry, context=text,
                                                            hinted=None):
                    continue
                return Match(start, cut_end, surface, entry), j + 1
        return None

    def _cjk_matches(self, text: str, taken: list[Match]) -> list[Match]:
        if not self.cjk_aliases or not _CJK.search(text):
            return []
        normalized_text = text  # CJK aliases have no case or punctuation to normalise away
        used = [(m.start, m.end) for m in taken]
        out = []
        for alias in self.cjk_aliases:
            for m in re.finditer(re.escape(alias), normalized_text):
                if any(m.start() < e and s < m.end() for s, e in used):
                    continue
                used.append((m.start(), m.end()))
                out.append(Match(m.start(), m.end(), text[m.start():m.end()], self.index.by_key[alias]))
        return out


def _build_automaton(index: BrandIndex):
    """Aho-Corasick over the alias keys (about a millisecond per thousand); None when a key is empty, which
    no automaton holds (then every text takes the plain search)."""
    if "" in index.by_key:
        return None
    automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
    for key in index.by_key:
        automaton.add_word(key, len(key))
    if len(automaton):
        automaton.make_automaton()
    return automaton


def _normalized_chars(text: str) -> tuple[str, list[int]] | None:
    """`text` normalised character by character, and where each character's part starts in it (so
    normalize(text[a:b]) == keys[offsets[a]:offsets[b]]); None when a character's normalisation may depend
    on its neighbours."""
    parts = list(map(_CHAR_KEYS.__getitem__, text))
    if None in parts:
        return None
    return "".join(parts), list(accumulate(map(len, parts), initial=0))


class _CharKeys(dict):
    """Character → `_char_key(character)`, computed on first sight (there are few distinct characters)."""

    def __missing__(self, ch: str) -> str | None:
        part = self[ch] = _char_key(ch)
        return part


_CHAR_KEYS = _CharKeys()


def _char_key(ch: str) -> str | None:
    """normalize(ch), or None when `normalize` could join `ch` to the character before it.

    `normalize` is NFKC, casefold, NFD, drop combining marks, NFC, drop non-word characters. Casefolding
    and the drops work per character; the normalisation forms join characters only where one begins with
    a combining mark (reordered, composed) or with the second half of a composition (Hangul vowel/final
    jamo, Indic length marks). A character that begins with neither at every step joins nothing, and on a
    text of such characters normalising a span is slicing the per-character result."""
    if ch.isascii():  # joins nothing (and spares ASCII-only traffic the table below)
        return normalize(ch)
    folded = unicodedata.normalize("NFKC", ch).casefold()
    for step in (unicodedata.normalize("NFKD", ch), unicodedata.normalize("NFKC", ch), folded,
                 unicodedata.normalize("NFD", folded)):
        if not step or unicodedata.combining(step[0]) or step[0] in _composition_seconds():
            return None
    return normalize(ch)


@cache
def _composition_seconds() -> frozenset[str]:
    """Characters that compose with the one before them (the second of a canonical pair)."""
    seconds = {chr(cp) for cp in (*range(0x1161, 0x1176), *range(0x11A8, 0x11C3))}  # Hangul V and T jamo
    for cp in range(0x110000):
        parts = unicodedata.decomposition(chr(cp)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            seconds.add(chr(int(parts[1], 16)))
    return frozenset(seconds)


def as_written(text: str, start: int, end: int) -> str:
    """The mention with the '#' or '@' written right before it: evidence that it is a name ('@glowrecipe')."""
    mark = text[start - 1] if start > 0 and text[start - 1] in "#@" else ""
    return mark + text[start:end]


def _is_name_suffix(text: str, end: int, token: tuple[int, int]) -> bool:
    if text[end:token[0]] != " ":
        return False
    word = text[token[0]:token[1]]
    return word.casefold() in NAME_SUFFIXES and (word[:1].isupper() or word.casefold() == "cosmetics")


def _strip_possessive(text: str, start: int, end: int) -> int | None:
    m = _POSSESSIVE.search(text[start:end])
    return start + m.start() if m else None
