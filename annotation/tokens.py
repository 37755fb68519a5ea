"""Split a post into the tokens the editor renders, with Python code-point offsets.

The browser never derives offsets from its own (UTF-16) string indices: every token carries the
offsets computed here, so an emoji, a CJK character or a combining accent never shifts a span.
Words keep inner apostrophes, dots, hyphens and ampersands (L'Oréal, e.l.f., Dr.Jart, Clean&Clear),
like the gazetteer; each CJK character is a token (no spaces to mark words); any other symbol is a
token with what clusters onto it (combining marks, variation selectors, skin tones, ZWJ sequences).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from kb.rules import WORD_JOINERS, is_cjk

_JOINERS = set(WORD_JOINERS)
_ZWJ = "\u200d"


@dataclass(frozen=True)
class Token:
    start: int
    end: int
    text: str
    kind: str  # word | cjk | symbol | space


def _is_word(ch: str) -> bool:
    return (ch.isalnum() or unicodedata.category(ch)[0] == "M") and not is_cjk(ch)


def _clusters_onto(ch: str) -> bool:
    o = ord(ch)
    return (unicodedata.category(ch) in ("Mn", "Me", "Mc") or 0xFE00 <= o <= 0xFE0F or 0x1F3FB <= o <= 0x1F3FF
            or 0xE0020 <= o <= 0xE007F)


def tokenize(text: str) -> list[Token]:
    """Every code point of `text` belongs to exactly one token; tokens are contiguous and ordered."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        j = i + 1
        if ch.isspace():
            while j < n and text[j].isspace():
                j += 1
            kind = "space"
        elif is_cjk(ch):
            while j < n and _clusters_onto(text[j]):
                j += 1
            kind = "cjk"
        elif _is_word(ch):
            while j < n:
                if _is_word(text[j]):
                    j += 1
                elif text[j] in _JOINERS and j + 1 < n and _is_word(text[j + 1]):
                    j += 2
                else:
                    break
            kind = "word"
        else:
            while j < n:
                if _clusters_onto(text[j]):
                    j += 1
                elif text[j] == _ZWJ and j + 1 < n:
                    j += 2
                else:
                    break
            kind = "symbol"
        tokens.append(Token(i, j, text[i:j], kind))
        i = j
    return tokens
