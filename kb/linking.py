"""Normalise brand mentions and resolve them to KB brands.

Order of resolution: exact alias (after normalisation), the same with a grammatical possessive or a
brand-ish suffix removed ("Clinique's", "maccosmetics", "#esteelauderbeauty"), then fuzzy matching
above a threshold. Brands flagged ambiguous (Fresh, Simple, Dove...) resolve only with evidence: the
caller names the brand (a teacher's canonical name, an annotator's choice) or the mention is written
as a name (hashtag, handle, or capitalised) in a text with beauty wording.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from kb.rules import POSSESSIVE

FUZZY_THRESHOLD = 90.0
FUZZY_MIN_LENGTH = 5
_STRIP = re.compile(r"[\W_]+", re.UNICODE)
# Written after a brand in handles and hashtags: @maccosmetics, #fentybeauty, #skiiofficial.
BRAND_SUFFIXES = ("cosmetics", "cosmetic", "beauty", "skincare", "makeup", "official", "paris", "usa", "uk", "global")
BEAUTY_WORDS = re.compile(
    r"\b(skin|skincare|makeup|make-up|lipstick|lip|mascara|foundation|concealer|serum|cream|moisturi[sz]er|"
    r"cleanser|toner|sunscreen|spf|perfume|fragrance|scent|cologne|hair|shampoo|conditioner|nail|polish|"
    r"beauty|cosmetics?|palette|blush|bronzer|eyeliner|shadow|primer|lotion|mask|acne|balm|essence|"
    r"shave|shaving|razor|soap|body wash|deodorant|brow|lash|highlighter)s?\b",
    re.IGNORECASE,
)


def normalize(text: str) -> str:
    """NFKC, casefold, accents and punctuation/whitespace/#/@ removed: 'L’Oréal Paris' → 'lorealparis'."""
    text = unicodedata.normalize("NFKC", text).casefold()
    decomposed = unicodedata.normalize("NFD", text)
    text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _STRIP.sub("", unicodedata.normalize("NFC", text))


@dataclass(frozen=True)
class BrandEntry:
    brand_id: int
    canonical_name: str
    category: str
    is_ambiguous: bool


@dataclass(frozen=True)
class Link:
    brand: BrandEntry | None
    method: str  # exact | variant | fuzzy | ambiguous | none
    score: float = 0.0

    @property
    def brand_id(self) -> int | None:
        return self.brand.brand_id if self.brand else None


class BrandIndex:
    """Normalised alias → brand, in memory. Built from the database by `kb.index.get_index()`."""

    def __init__(self, entries: dict[str, BrandEntry], evidence_keys: frozenset[str] = frozenset()):
        self.by_key = entries
        self.by_id = {e.brand_id: e for e in entries.values()}
        self.by_canonical = {normalize(e.canonical_name): e for e in self.by_id.values()}
        # Keys that name their brand only with evidence, as an ambiguous brand's do ("Fresh" the brand, not
        # "fresh skin"): a student's index marks so the KB aliases its training texts use as plain words.
        self.evidence_keys = frozenset(k for k in evidence_keys if k in entries)
        self._fuzzy_keys = [k for k, e in entries.items() if len(k) >= FUZZY_MIN_LENGTH and not e.is_ambiguous
                            and k not in self.evidence_keys]

    def needs_evidence(self, key: str, entry: BrandEntry) -> bool:
        return entry.is_ambiguous or key in self.evidence_keys

    def lookup(self, text: str) -> tuple[BrandEntry | None, str]:
        key = normalize(text)
        if not key:
            return None, "none"
        if key in self.by_key:
            return self.by_key[key], "exact"
        for variant in _variants(text, key):
            if variant in self.by_key:
                return self.by_key[variant], "variant"
        return None, "none"

    def lookup_suffixed(self, key: str) -> BrandEntry | None:
        """A key with a brand-ish suffix removed: 'maccosmetics' → MAC."""
        for suffix in BRAND_SUFFIXES:
            if key.endswith(suffix) and len(key) - len(suffix) >= 2 and key[: -len(suffix)] in self.by_key:
                return self.by_key[key[: -len(suffix)]]
        return None

    def resolve(
        self,
        text: str,
        *,
        context: str | None = None,
        hint: str | None = None,
        fuzzy: bool = True,
        threshold: float = FUZZY_THRESHOLD,
    ) -> Link:
        """Resolve a mention to a brand. `hint` is a canonical name proposed by someone else."""
        hinted = self.by_canonical.get(normalize(hint)) if hint else None
        entry, method = self.lookup(text)
        if entry is None and hinted is not None and _similar(text, hinted.canonical_name):
            entry, method = hinted, "hint"
        if entry is None and fuzzy:
            key = normalize(text)
            if len(key) >= FUZZY_MIN_LENGTH and self._fuzzy_keys:
                best = process.extractOne(key, self._fuzzy_keys, scorer=fuzz.ratio, score_cutoff=threshold)
                if best is not None:
                    return Link(self.by_key[best[0]], "fuzzy", float(best[1]))
        if entry is None:
            return Link(None, "none")
        if self.needs_evidence(normalize(text), entry) and not has_evidence(text, entry, context=context, hinted=hinted):
            return Link(None, "ambiguous")
        return Link(entry, method, 100.0)


def _variants(text: str, key: str) -> list[str]:
    variants = []
    stripped = POSSESSIVE.sub("", text.strip())
    if stripped != text.strip():
        variants.append(normalize(stripped))
    variants.extend(key[: -len(s)] for s in BRAND_SUFFIXES if key.endswith(s) and len(key) - len(s) >= 2)
    return variants


def _similar(a: str, b: str) -> bool:
    return fuzz.ratio(normalize(a), normalize(b)) >= 80


def has_evidence(text: str, entry: BrandEntry, *, context: str | None, hinted: BrandEntry | None) -> bool:
    if hinted is not None and hinted.brand_id == entry.brand_id:
        return True
    written_as_name = text[:1] in "#@" or text[:1].isupper()
    return bool(context) and written_as_name and bool(BEAUTY_WORDS.search(context))
