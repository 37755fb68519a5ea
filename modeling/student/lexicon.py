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
from dataclasses import dataclass

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
            text, brands, categories = forms.setdefault(key, (written, Counter(), Counter()))
            brands[(span.get("brand") or written).strip()] += 1
            categories[span.get("category") or "other"] += 1
    if not forms:
        return []
    entries: dict[str, BrandEntry] = {}
    brand_of: dict[str, tuple[str, str, bool]] = {}
    new_ids: dict[str, int] = {}
    for key, (_, brands, categories) in forms.items():
        name = brands.most_common(1)[0][0]
        kb_entry = index.by_canonical.get(normalize(name))
        if kb_entry is not None:
            entry = kb_entry
        else:
            brand_key = normalize(name) or key
            new_ids.setdefault(brand_key, -(len(new_ids) + 1))
            entry = BrandEntry(new_ids[brand_key], name, categories.most_common(1)[0][0], False)
        entries[key] = entry
        brand_of[key] = (entry.canonical_name, entry.category, kb_entry is not None)
    labelled, matches = _match_counts(examples, BrandIndex(entries))
    out = []
    for key, (written, _, _) in forms.items():
        name, category, in_kb = brand_of[key]
        entry = LexiconEntry(key, written, name, category, labelled[key], matches[key], in_kb)
        if entry.matches and entry.precision >= min_precision:
            out.append(entry)
    return sorted(out, key=lambda e: (-e.labelled, e.key))


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
    labelled under `max_precision` of them ("palette", "sure", "fresh", "I'm from"). The student leaves
    them out of its index; the KB itself is not changed."""
    labelled, matches = _match_counts(examples, index)
    return sorted(k for k, n in matches.items() if n >= min_matches and labelled[k] / n < max_precision)


def extend_index(index: BrandIndex, lexicon: list[LexiconEntry], drop: list[str] = ()) -> BrandIndex:
    """The KB index plus the lexicon's forms, less the `drop` keys; a KB alias wins over a mined one."""
    entries = {k: e for k, e in index.by_key.items() if k not in set(drop)}
    new_brands: dict[str, BrandEntry] = {}
    for item in lexicon:
        if item.key in index.by_key:
            continue
        if item.in_kb:
            entries[item.key] = index.by_canonical[normalize(item.brand)]
            continue
        brand_key = normalize(item.brand) or item.key
        if brand_key not in new_brands:
            new_brands[brand_key] = BrandEntry(-(len(new_brands) + 1), item.brand, item.category, False)
        entries[item.key] = new_brands[brand_key]
    for brand_key, entry in new_brands.items():  # a mined brand's own name names it, like a canonical name
        entries.setdefault(brand_key, entry)
    return BrandIndex(entries)


def is_mined(entry: BrandEntry) -> bool:
    return entry.brand_id < 0


def lexicon_summary(lexicon: list[LexiconEntry], dropped: list[str] = (), limit: int = 50) -> dict:
    new = defaultdict(int)
    for item in lexicon:
        if not item.in_kb:
            new[item.brand] += item.labelled
    return {"forms": len(lexicon), "new_brands": len(new), "dropped_kb_aliases": list(dropped),
            "top_new_brands": [b for b, _ in sorted(new.items(), key=lambda kv: -kv[1])[:limit]]}
