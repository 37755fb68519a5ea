"""Locate the teacher's mentions in the post text (Django-free).

The teacher gives no offsets (LLM offsets are not trusted); it lists each mention once per
occurrence, in order, so the k-th mention of a given text is aligned to the k-th occurrence of
that text. Matching ignores case and accents and respects word boundaries; a leading '#'/'@'
written by the teacher is dropped, because for `#OPI` the span is "OPI".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from kb.rules import POSSESSIVE, is_cjk

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'"})


class AlignmentError(ValueError):
    """A mention whose text is not in the post (a hallucination or a rewritten mention)."""


@dataclass(frozen=True)
class Aligned:
    start: int
    end: int
    text: str


def fold_with_map(text: str) -> tuple[str, list[int]]:
    """Case-, accent- and apostrophe-folded text, and for each folded char the index of its source char.

    Folding is done per character so every folded position maps back to an exact offset in the
    original text, even where casefolding changes the length ('ß' → 'ss').
    """
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        piece = unicodedata.normalize("NFKD", ch.translate(_APOSTROPHES)).casefold()
        piece = "".join(c for c in piece if not unicodedata.combining(c))
        for c in piece:
            out.append(c)
            index.append(i)
    return "".join(out), index


def _fold(text: str) -> str:
    return fold_with_map(text)[0]


def _is_word_char(ch: str) -> bool:
    return ch.isalnum()


def occurrences(text: str, mention: str, *, folded: tuple[str, list[int]] | None = None) -> list[tuple[int, int]]:
    """Every (start, end) of `mention` in `text`, folded; word-bounded ones first when there are any.

    A boundary is checked only on the sides where the mention itself starts/ends with a word char,
    so "e.l.f." and "up&up" still match. Scripts without spaces (CJK) have no boundaries to respect.
    """
    needle = _fold(mention)
    if not needle:
        return []
    hay, index = folded or fold_with_map(text)
    all_hits: list[tuple[int, int]] = []
    bounded: list[tuple[int, int]] = []
    pos = hay.find(needle)
    while pos != -1:
        end = pos + len(needle)
        start_i, end_i = index[pos], index[end - 1] + 1
        if (start_i, end_i) not in all_hits:
            all_hits.append((start_i, end_i))
            left_ok = start_i == 0 or not (_is_word_char(needle[0]) and _is_word_char(text[start_i - 1])) or is_cjk(needle[0])
            right_ok = end_i >= len(text) or not (_is_word_char(needle[-1]) and _is_word_char(text[end_i])) or is_cjk(needle[-1])
            if left_ok and right_ok:
                bounded.append((start_i, end_i))
        pos = hay.find(needle, pos + 1)
    return bounded or all_hits


def clean_mention(mention: str) -> str:
    """The mention as it should be searched: stripped, without a leading '#'/'@' or trailing punctuation."""
    mention = mention.strip()
    mention = mention.lstrip("#@").strip()
    return mention.rstrip(".,;:!?)\"").strip() or mention


def align_mentions(text: str, mentions: list[str], brands: list[str | None] | None = None) -> list[Aligned]:
    """Offsets for each mention, in the order given; raises AlignmentError for one not in `text`.

    A grammatical possessive the teacher copied ("Clinique's") is cut from the span unless the
    brand's own name ends with it (Kiehl's, Pond's): `brands` gives the teacher's brand name per mention.
    """
    folded = fold_with_map(text)
    used: set[tuple[int, int]] = set()
    cursor = 0
    out: list[Aligned] = []
    for raw in mentions:
        mention = clean_mention(raw or "")
        if not _fold(mention):
            raise AlignmentError(f"empty mention text {raw!r}")
        hits = occurrences(text, mention, folded=folded)
        if not hits and POSSESSIVE.search(mention):
            hits = occurrences(text, POSSESSIVE.sub("", mention), folded=folded)
        if not hits:
            raise AlignmentError(f"mention {raw!r} is not in the post text")
        free = [h for h in hits if h not in used]
        if not free:
            raise AlignmentError(f"mention {raw!r} is listed more often than it occurs ({len(hits)} time(s))")
        # Mentions come in reading order: the next free occurrence after the previous mention wins, so
        # an earlier unlabelled occurrence (inside a URL, say) does not steal the label; the k-th
        # listing of one text thus takes its k-th occurrence.
        after = [h for h in free if h[0] >= cursor]
        start, end = (after or free)[0]
        used.add((start, end))
        cursor = start
        brand = (brands[len(out)] if brands and len(out) < len(brands) else None) or ""
        if POSSESSIVE.search(text[start:end]) and not POSSESSIVE.search(brand.strip()) and end - start > 2:
            end -= 2
        out.append(Aligned(start, end, text[start:end]))
    return out
