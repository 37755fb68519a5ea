"""Span/post metrics on the interchange format. Strict span matching = seqeval's strict mode on the
same spans (a span counts when start and end are exact); brand EM compares normalised brand sets."""

from __future__ import annotations

from kb.linking import normalize


def _brand_key(span: dict) -> str:
    return normalize(span.get("brand") or span.get("text") or "")


def evaluate_predictions(gold: list[dict], pred: list[dict]) -> dict:
    """gold/pred: aligned lists of {"brands": [...], "is_beauty": bool, "brand_count"?: int}."""
    tp = fp = fn = 0
    cat_ok = cat_n = em = 0
    b_tp = b_fp = b_fn = 0
    count_ok = count_n = 0
    for g, p in zip(gold, pred):
        gs = {(s["start"], s["end"]): s for s in g.get("brands") or []}
        ps = {(s["start"], s["end"]): s for s in p.get("brands") or []}
        matched = gs.keys() & ps.keys()
        tp += len(matched)
        fp += len(ps) - len(matched)
        fn += len(gs) - len(matched)
        for key in matched:
            if gs[key].get("category"):
                cat_n += 1
                cat_ok += gs[key].get("category") == ps[key].get("category")
        em += {_brand_key(s) for s in gs.values()} == {_brand_key(s) for s in ps.values()}
        if g.get("is_beauty") is not None and p.get("is_beauty") is not None:
            gb, pb = bool(g["is_beauty"]), bool(p["is_beauty"])
            b_tp += gb and pb
            b_fp += pb and not gb
            b_fn += gb and not pb
        if p.get("brand_count") is not None:
            count_n += 1
            count_ok += min(int(p["brand_count"]), 3) == min(len(gs), 3)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    bp = b_tp / (b_tp + b_fp) if b_tp + b_fp else 0.0
    br = b_tp / (b_tp + b_fn) if b_tp + b_fn else 0.0
    return {
        "posts": len(gold), "span_precision": round(precision, 4), "span_recall": round(recall, 4),
        "span_f1": round(f1, 4), "span_tp": tp, "span_fp": fp, "span_fn": fn,
        "brand_em": round(em / len(gold), 4) if gold else 0.0,
        "category_accuracy": round(cat_ok / cat_n, 4) if cat_n else 0.0,
        "beauty_f1": round(2 * bp * br / (bp + br), 4) if bp + br else 0.0,
        "brand_count_accuracy": round(count_ok / count_n, 4) if count_n else None,
    }
