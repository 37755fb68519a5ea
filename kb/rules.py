"""The rules every layer shares, in one place: the category list and the text rules (which characters
are CJK, what a word is, what a grammatical possessive is). Pure Python, no Django: the editor's
tokens, the gazetteer, the teacher's aligner, the student and the benchmarks all import them from here
(tests/beautybrain_app/test_architecture.py fails on a second definition)."""

from __future__ import annotations

import re

CATEGORY_SLUGS = ("skincare", "makeup", "haircare", "fragrance", "nails", "bodycare", "tools", "other")

# Kana, CJK ideographs (with extension A, compatibility and the supplementary planes) and Hangul: scripts
# written without spaces between words, so each character is a word of its own.
CJK_RANGES = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7AF), (0xF900, 0xFAFF),
              (0x20000, 0x2FA1F))
CJK_CLASS = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in CJK_RANGES)  # for a regex character class
CJK = re.compile(f"[{CJK_CLASS}]")
KANA = re.compile("[\u3040-\u30ff]")  # the scripts inside CJK, for writing a name in the same script
HANGUL = re.compile("[\uac00-\ud7af]")
# Two or more Han characters in a row (Chinese, and Japanese kanji): what jieba cuts into words.
HAN_RANGES = tuple(r for r in CJK_RANGES if r not in ((0x3040, 0x30FF), (0xAC00, 0xD7AF)))
HAN_RUN = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in HAN_RANGES) + "]{2,}")


def is_cjk(ch: str) -> bool:
    o = ord(ch)
    return any(lo <= o <= hi for lo, hi in CJK_RANGES)


# A word: one CJK character, or letters/digits with inner ' ’ . - & + (L'Oréal, e.l.f., Dr.Jart, Clean&Clear).
# "_" ends a word: handles write "@somebymi_official", "@anua_kr", and the brand is the part before it.
WORD_JOINERS = "'’.-&+"
WORD = re.compile(
    rf"[{CJK_CLASS}]|(?:(?![{CJK_CLASS}])[^\W_])(?:(?![{CJK_CLASS}])[^\W_]|['’.\-&+](?=(?![{CJK_CLASS}])[^\W_]))*"
)

# A grammatical possessive at the end of a mention ("Clinique's"); whether it is cut depends on the KB
# (Kiehl's keeps it), which the gazetteer and the aligner decide.
POSSESSIVE = re.compile(r"['’]s$", re.IGNORECASE)
