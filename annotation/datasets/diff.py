"""What changed between two dataset versions, from two streams of items sorted by post key.

Memory stays flat: the streams are merged like a sorted-merge join, one post at a time.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Iterator, Mapping

EXAMPLES = 20


def _span_key(span: Mapping) -> tuple[int, int]:
    return (span["start"], span["end"])


def _label(span: Mapping) -> tuple:
    return (span.get("brand") or None, span.get("category") or None)


def diff_items(old: Iterable[tuple[object, Mapping]], new: Iterable[tuple[object, Mapping]]) -> dict:
    """`old`/`new`: (post_key, {"kind", "split", "is_beauty", "spans"}) sorted by post_key, one per post.

    A post is changed when its kind, split, is_beauty or spans differ. Spans are matched by their
    offsets: same offsets with another brand or category = changed. Per-category figures count an
    added or changed span under its new category, a removed one under its old category.
    """
    posts = {"added": 0, "removed": 0, "changed": 0, "unchanged": 0}
    by_kind: dict[str, dict[str, int]] = defaultdict(lambda: {"added": 0, "removed": 0, "changed": 0})
    spans = {"added": 0, "removed": 0, "changed": 0}
    by_category: dict[str, dict[str, int]] = defaultdict(lambda: {"added": 0, "removed": 0, "changed": 0})
    silver_to_gold = 0
    examples: dict[str, list] = {"added": [], "removed": [], "changed": []}

    def note(what: str, key) -> None:
        if len(examples[what]) < EXAMPLES:
            examples[what].append(key)

    def count_spans(what: str, items: Iterable[Mapping]) -> None:
        for sp in items:
            spans[what] += 1
            by_category[sp.get("category") or "(none)"][what] += 1

    for key, a, b in _merge(iter(old), iter(new)):
        if a is None:
            posts["added"] += 1
            by_kind[b["kind"]]["added"] += 1
            count_spans("added", b["spans"])
            note("added", key)
        elif b is None:
            posts["removed"] += 1
            by_kind[a["kind"]]["removed"] += 1
            count_spans("removed", a["spans"])
            note("removed", key)
        else:
            old_spans = {_span_key(s): s for s in a["spans"]}
            new_spans = {_span_key(s): s for s in b["spans"]}
            added = [s for k, s in new_spans.items() if k not in old_spans]
            removed = [s for k, s in old_spans.items() if k not in new_spans]
            changed = [s for k, s in new_spans.items() if k in old_spans and _label(old_spans[k]) != _label(s)]
            count_spans("added", added)
            count_spans("removed", removed)
            count_spans("changed", changed)
            if added or removed or changed or any(a[f] != b[f] for f in ("kind", "split", "is_beauty")):
                posts["changed"] += 1
                by_kind[b["kind"]]["changed"] += 1
                silver_to_gold += a["kind"] == "silver" and b["kind"] == "gold"
                note("changed", key)
            else:
                posts["unchanged"] += 1
    return {
        "posts": posts,
        "by_kind": dict(sorted(by_kind.items())),
        "silver_to_gold": silver_to_gold,
        "spans": spans,
        "by_category": dict(sorted(by_category.items())),
        "examples": examples,
    }


def _merge(old: Iterator, new: Iterator) -> Iterator[tuple]:
    a, b = next(old, None), next(new, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            yield a[0], a[1], None
            a = next(old, None)
        elif a is None or b[0] < a[0]:
            yield b[0], None, b[1]
            b = next(new, None)
        else:
            yield a[0], a[1], b[1]
            a, b = next(old, None), next(new, None)
