"""Evaluation metrics on the interchange format (Django-free; the student's evaluation reuses them).

Rows are dicts with `text`, `is_beauty` and `brands` ([{start, end, text, brand, category}]).
- span P/R/F1: strict (exact start and end), micro-averaged. It equals seqeval's strict entity
  F1 with one entity type on a character-level BIO encoding (`to_bio`), which the tests check.
- brand exact match: the post-level set of canonical brands (casefolded) is equal; averaged over posts.
- category accuracy: on spans matched exactly, the share with the same category.
- beauty F1: binary F1 of is_beauty (posts whose gold is_beauty is unknown are left out).
- brand-count accuracy: the number of mentions bucketed 0/1/2/3+ is right.
"""

from __future__ import annotations

from collections.abc import Sequence


def _spans(row: dict) -> set[tuple[int, int]]:
    return {(int(b["start"]), int(b["end"])) for b in row.get("brands") or []}


def _prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def span_prf(gold: Sequence[dict], pred: Sequence[dict]) -> dict:
    tp = n_pred = n_gold = 0
    for g, p in zip(gold, pred, strict=True):
        gs, ps = _spans(g), _spans(p)
        tp += len(gs & ps)
        n_pred += len(ps)
        n_gold += len(gs)
    precision, recall, f1 = _prf(tp, n_pred, n_gold)
    return {"span_precision": precision, "span_recall": recall, "span_f1": f1, "span_tp": tp,
            "span_pred": n_pred, "span_gold": n_gold}


def brand_set(row: dict) -> set[str]:
    return {str(b.get("brand") or b.get("text") or "").casefold() for b in row.get("brands") or []}


def brand_exact_match(gold: Sequence[dict], pred: Sequence[dict]) -> float:
    if not gold:
        return 0.0
    return sum(brand_set(g) == brand_set(p) for g, p in zip(gold, pred, strict=True)) / len(gold)


def category_accuracy(gold: Sequence[dict], pred: Sequence[dict]) -> float | None:
    """None when no span matched (nothing to judge)."""
    right = matched = 0
    for g, p in zip(gold, pred, strict=True):
        gcat = {(int(b["start"]), int(b["end"])): b.get("category") for b in g.get("brands") or []}
        for b in p.get("brands") or []:
            key = (int(b["start"]), int(b["end"]))
            if key in gcat:
                matched += 1
                right += gcat[key] == b.get("category")
    return right / matched if matched else None


def beauty_f1(gold: Sequence[dict], pred: Sequence[dict]) -> float:
    tp = fp = fn = 0
    for g, p in zip(gold, pred, strict=True):
        if g.get("is_beauty") is None:
            continue
        gb, pb = bool(g["is_beauty"]), bool(p.get("is_beauty"))
        tp += gb and pb
        fp += pb and not gb
        fn += gb and not pb
    return _prf(tp, tp + fp, tp + fn)[2]


def count_bucket(n: int) -> int:
    return min(int(n), 3)


def brand_count_accuracy(gold: Sequence[dict], pred: Sequence[dict], pred_counts: Sequence[int] | None = None) -> float:
    """`pred_counts` (a count head's output) overrides the number of predicted spans when given."""
    if not gold:
        return 0.0
    counts = pred_counts if pred_counts is not None else [len(p.get("brands") or []) for p in pred]
    return sum(count_bucket(len(g.get("brands") or [])) == count_bucket(c)
               for g, c in zip(gold, counts, strict=True)) / len(gold)


def evaluate(gold: Sequence[dict], pred: Sequence[dict]) -> dict:
    """Every metric above; `pred[i]` is the prediction for `gold[i]`."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold rows but {len(pred)} predictions")
    out = span_prf(gold, pred)
    out.update(
        brand_em=brand_exact_match(gold, pred),
        category_accuracy=category_accuracy(gold, pred),
        beauty_f1=beauty_f1(gold, pred),
        brand_count_accuracy=brand_count_accuracy(gold, pred),
        posts=len(gold),
    )
    return out


def to_bio(text: str, brands: Sequence[dict], label: str = "BRAND") -> list[str]:
    """One tag per character: the encoding under which seqeval's strict F1 equals `span_prf`."""
    tags = ["O"] * len(text)
    for b in sorted(brands, key=lambda b: b["start"]):
        start, end = int(b["start"]), int(b["end"])
        if start >= end or any(t != "O" for t in tags[start:end]):
            continue  # BIO cannot hold overlaps; span_prf never sees any from our predictors
        tags[start] = f"B-{label}"
        for i in range(start + 1, end):
            tags[i] = f"I-{label}"
    return tags


def span_prf_by_group(gold: Sequence[dict], pred: Sequence[dict], groups: Sequence[str]) -> dict[str, dict]:
    """Span P/R/F1 per group (platform, say): {group: {span_precision, span_recall, span_f1, span_gold, posts}}."""
    by_group: dict[str, tuple[list, list]] = {}
    for g, p, key in zip(gold, pred, groups, strict=True):
        gs, ps = by_group.setdefault(key or "unknown", ([], []))
        gs.append(g)
        ps.append(p)
    out = {}
    for key in sorted(by_group):
        gs, ps = by_group[key]
        figures = span_prf(gs, ps)
        out[key] = {k: figures[k] for k in ("span_precision", "span_recall", "span_f1", "span_gold")}
        out[key]["posts"] = len(gs)
    return out


def unseen_brand_scores(gold: Sequence[dict], pred: Sequence[dict], known: set[str], key) -> dict:
    """Recall on gold mentions whose written form and brand are both absent from `known` (the KB's keys and
    every form and brand of the model's training labels, through `key`, a normaliser), and precision of the
    predicted spans whose written form and brand are unknown too: what a model finds beyond what it was told."""
    def unseen(b: dict) -> bool:
        return key(b.get("text") or "") not in known and key(b.get("brand") or b.get("text") or "") not in known

    n_gold = found = n_pred = right = 0
    for g, p in zip(gold, pred, strict=True):
        gs, ps = _spans(g), _spans(p)
        for b in g.get("brands") or []:
            if unseen(b):
                n_gold += 1
                found += (int(b["start"]), int(b["end"])) in ps
        for b in p.get("brands") or []:
            if unseen(b):
                n_pred += 1
                right += (int(b["start"]), int(b["end"])) in gs
    return {"unseen_mentions": n_gold, "unseen_found": found, "unseen_recall": found / n_gold if n_gold else None,
            "unseen_predicted": n_pred, "unseen_precision": right / n_pred if n_pred else None}
