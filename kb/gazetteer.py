"""Dictionary matching of KB aliases on token boundaries: the cold-start labeller and the baseline.

Django-free: it works on a `BrandIndex` (kb.linking), so the student's data pipeline can use it too.
Rules: word boundaries; hashtags and handles match on the part after '#'/'@' ('#esteelauder');
a grammatical possessive stays outside the span ("Clinique's" → "Clinique") unless it is part of
the alias (Kiehl's); longest match first, left to right, no overlaps; aliases written in CJK match
as substrings (no spaces to mark boundaries); ambiguous brands need evidence (kb.linking).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
    def __init__(self, index: BrandIndex):
        self.index = index
        self.cjk_aliases = sorted((k for k in index.by_key if _CJK.search(k)), key=len, reverse=True)

    def find(self, text: str) -> list[Match]:
        tokens = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        found: list[Match] = []
        i = 0
        while i < len(tokens):
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
