"""Brand names the training labels teach: the student's own lexicon beside the KB.

The teacher's silver labels and the gold spans name many brands the KB lacks (CeraVe, Cetaphil, MAC,
Gillette...). Every form written as a brand in a training label is a candidate alias. It joins the
student's index when, over all training texts, its dictionary matches mostly are labelled spans: a word
the teacher tagged once but that the texts use plainly many times ("directions", "purpose") stays out.
The index then feeds the gazetteer feature, KB-aware decoding and linking, exactly as KB aliases do, and
travels inside the artifact (kb.json), so a generation predicts the same way on any host.

Brands found only here get negative ids: they are not KB rows, and predictions report them unlinked.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, replace

from kb.gazetteer import Gazetteer
from kb.linking import BrandEntry, BrandIndex, normalize

from .text import Example


@dataclass(frozen=True)
class LexiconEntry:
    key: str  # normalised written form
    text: str  # the form as first written in a label
    brand: str  # canonical name: the KB's when the label names a KB brand, else the label's
    category: str
    labelled: int  # dictionary matches in training texts that are labelled spans
    matches: int  # all dictionary matches in training texts
    in_kb: bool  # the brand (not the form) is a KB brand

    @property
    def precision(self) -> float:
        return self.labelled / self.matches if self.matches else 0.0


def mine_lexicon(examples: list[Example], index: BrandIndex, *, min_precision: float = 0.3) -> list[LexiconEntry]:
    """Candidate forms from the labels of `examples`, kept when their matches in the same texts are
    labelled at least `min_precision` of the time. Forms the KB already knows are not candidates."""
    forms: dict[str, tuple[str, Counter, Counter]] = {}
    for ex in examples:
        for span in ex.spans:
            written = ex.text[span["start"]:span["end"]]
            key = normalize(written)
            if len(key) < 2 or key in index.by_key or key.isdigit():
                continue
            _, brands, categories = forms.setdefault(key, (written, Counter(), Counter()))
            brands[(span.get("brand") or written).strip()] += 1
            categories[span.get("category") or "other"] += 1
    candidates = []
    for key, (written, brands, categories) in forms.items():
        name = brands.most_common(1)[0][0]
        kb_entry = index.by_canonical.get(normalize(name))
        candidates.append(LexiconEntry(key, written, kb_entry.canonical_name if kb_entry else name,
                                       kb_entry.category if kb_entry else categories.most_common(1)[0][0],
                                       0, 0, kb_entry is not None))
    if not candidates:
        return []
    labelled, matches = _match_counts(examples, BrandIndex(_form_entries(index, candidates)))
    out = [replace(c, labelled=labelled[c.key], matches=matches[c.key]) for c in candidates]
    return sorted((e for e in out if e.matches and e.precision >= min_precision), key=lambda e: (-e.labelled, e.key))


def _form_entries(index: BrandIndex, lexicon: list[LexiconEntry]) -> dict[str, BrandEntry]:
    """Written form → brand: the KB's brand when the form names one, else one new entry per mined brand
    (negative id), shared by all its forms."""
    entries: dict[str, BrandEntry] = {}
    new_brands: dict[str, BrandEntry] = {}
    for item in lexicon:
        if item.in_kb:
            entries[item.key] = index.by_canonical[normalize(item.brand)]
            continue
        brand_key = normalize(item.brand) or item.key
        if brand_key not in new_brands:
            new_brands[brand_key] = BrandEntry(-(len(new_brands) + 1), item.brand, item.category, False)
        entries[item.key] = new_brands[brand_key]
    return entries


def _match_counts(examples: list[Example], candidates: BrandIndex) -> tuple[Counter, Counter]:
    gazetteer = Gazetteer(candidates)
    labelled: Counter = Counter()
    matches: Counter = Counter()
    seen: set[str] = set()
    for ex in examples:
        if ex.text in seen:  # an augmented or repeated text would count its matches twice
            continue
        seen.add(ex.text)
        gold = {(s["start"], s["end"]) for s in ex.spans}
        for m in gazetteer.find(ex.text):
            key = normalize(m.text)
            if key not in candidates.by_key:
                key = next((k for k, e in candidates.by_key.items() if e is m.brand and key.startswith(k)), key)
            matches[key] += 1
            labelled[key] += (m.start, m.end) in gold
    return labelled, matches


def unreliable_kb_keys(examples: list[Example], index: BrandIndex, *, min_matches: int = 2,
                       max_precision: float = 0.2) -> list[str]:
    """KB aliases that the training texts use as plain words: matched at least `min_matches` times and
    labelled under `max_precision` of them ("palette", "sure", "fresh", "I'm from"). The student's index
    keeps them as names that need evidence (`extend_index`); the KB itself is not changed."""
    labelled, matches = _match_counts(examples, index)
    return sorted(k for k, n in matches.items() if n >= min_matches and labelled[k] / n < max_precision)


def extend_index(index: BrandIndex, lexicon: list[LexiconEntry], plain: list[str] = ()) -> BrandIndex:
    """The KB index plus the lexicon's forms; a KB alias wins over a mined one. The `plain` keys (KB aliases
    the training texts use as plain words) stay, but name their brand only with evidence, as an ambiguous
    brand's do: "the Fresh sugar lip treatment" is Fresh, "fresh skin" is not."""
    entries = dict(index.by_key)
    mined = _form_entries(index, [item for item in lexicon if item.key not in index.by_key])
    entries.update(mined)
    for entry in {id(e): e for e in mined.values() if is_mined(e)}.values():
        # A mined brand's own name names it, like a canonical name does.
        if key := normalize(entry.canonical_name):
            entries.setdefault(key, entry)
    return BrandIndex(entries, index.evidence_keys | set(plain))


def is_mined(entry: BrandEntry) -> bool:
    return entry.brand_id < 0


def lexicon_summary(lexicon: list[LexiconEntry], dropped: list[str] = (), limit: int = 50) -> dict:
    new = defaultdict(int)
    for item in lexicon:
        if not item.in_kb:
            new[item.brand] += item.labelled
    return {"forms": len(lexicon), "new_brands": len(new), "dropped_kb_aliases": list(dropped),
            "top_new_brands": [b for b, _ in sorted(new.items(), key=lambda kv: -kv[1])[:limit]]}
