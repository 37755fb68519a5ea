"""Inter-annotator agreement, pure Python: span F1 (exact boundaries and partial overlap) and Cohen's
kappa on is_beauty. Counts are micro-averaged over posts, so a post with many spans weighs more."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

SpanSet = set[tuple[int, int]]


@dataclass
class PairCounts:
    a_spans: int = 0
    b_spans: int = 0
    exact: int = 0  # spans with the same boundaries in both
    a_overlapping: int = 0  # spans of A that overlap some span of B
    b_overlapping: int = 0
    beauty: list[tuple[bool, bool]] = field(default_factory=list)
    posts: int = 0

    def add_post(self, a: SpanSet, b: SpanSet, beauty_a: bool | None, beauty_b: bool | None) -> None:
        self.posts += 1
        self.a_spans += len(a)
        self.b_spans += len(b)
        self.exact += len(a & b)
        self.a_overlapping += sum(any(s < e2 and s2 < e for s2, e2 in b) for s, e in a)
        self.b_overlapping += sum(any(s < e2 and s2 < e for s2, e2 in a) for s, e in b)
        if beauty_a is not None and beauty_b is not None:
            self.beauty.append((beauty_a, beauty_b))

    def merge(self, other: PairCounts) -> None:
        for name in ("a_spans", "b_spans", "exact", "a_overlapping", "b_overlapping", "posts"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.beauty.extend(other.beauty)

    @property
    def f1_exact(self) -> float | None:
        total = self.a_spans + self.b_spans
        return 2 * self.exact / total if total else None

    @property
    def f1_partial(self) -> float | None:
        total = self.a_spans + self.b_spans
        return (self.a_overlapping + self.b_overlapping) / total if total else None

    @property
    def kappa(self) -> float | None:
        return cohen_kappa(self.beauty)


def cohen_kappa(pairs: list[tuple[bool, bool]]) -> float | None:
    """κ = (p_o − p_e) / (1 − p_e) for two raters and two labels; None without items."""
    n = len(pairs)
    if not n:
        return None
    p_o = sum(a == b for a, b in pairs) / n
    a_true = sum(a for a, _ in pairs) / n
    b_true = sum(b for _, b in pairs) / n
    p_e = a_true * b_true + (1 - a_true) * (1 - b_true)
    if p_e == 1:
        return 1.0 if p_o == 1 else 0.0
    return (p_o - p_e) / (1 - p_e)


def agreement(annotations: list[dict]) -> dict:
    """`annotations`: [{"post": id, "annotator": name, "is_beauty": bool|None, "spans": {(s, e), ...}}].
    Returns {"pairs": {(a, b): PairCounts}, "overall": PairCounts} over posts both of a pair annotated."""
    by_post: dict[int, list[dict]] = {}
    for a in annotations:
        by_post.setdefault(a["post"], []).append(a)
    pairs: dict[tuple[str, str], PairCounts] = {}
    for items in by_post.values():
        for x, y in combinations(sorted(items, key=lambda i: str(i["annotator"])), 2):
            counts = pairs.setdefault((x["annotator"], y["annotator"]), PairCounts())
            counts.add_post(x["spans"], y["spans"], x["is_beauty"], y["is_beauty"])
    overall = PairCounts()
    for counts in pairs.values():
        overall.merge(counts)
    return {"pairs": dict(sorted(pairs.items())), "overall": overall}
