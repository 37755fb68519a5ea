"""metrics.span_prf against seqeval on the same data (character-level BIO), and the other metrics by hand."""

import json
import random

import pytest
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from modeling.metrics import (
    beauty_f1, brand_count_accuracy, brand_exact_match, category_accuracy, evaluate, span_prf, to_bio,
)
from tests.conftest import DEMO


def _gold():
    with (DEMO / "gold_seed.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _perturb(rows, seed=7):
    """Predictions that drop, shift and invent spans, so P, R and F1 all differ from 1."""
    rng = random.Random(seed)
    out = []
    for row in rows:
        brands = []
        for b in row.get("brands") or []:
            r = rng.random()
            if r < 0.2:
                continue
            if r < 0.3:
                b = {**b, "end": b["end"] - 1}
            brands.append(b)
        if rng.random() < 0.1 and len(row["text"]) > 5:
            brands.append({"start": 0, "end": 3, "text": row["text"][:3], "brand": "X", "category": "other"})
        clean = []
        for b in sorted(brands, key=lambda b: b["start"]):  # BIO cannot hold overlaps
            if not clean or b["start"] >= clean[-1]["end"]:
                clean.append(b)
        out.append({"text": row["text"], "is_beauty": not row.get("is_beauty"), "brands": clean})
    return out


def test_span_prf_equals_seqeval_strict_on_the_same_data():
    gold = _gold()
    pred = _perturb(gold)
    ours = span_prf(gold, pred)
    y_true = [to_bio(g["text"], g.get("brands") or []) for g in gold]
    y_pred = [to_bio(p["text"], p["brands"]) for p in pred]
    kwargs = {"mode": "strict", "scheme": IOB2}
    assert 0.3 < ours["span_f1"] < 0.95
    assert ours["span_precision"] == pytest.approx(precision_score(y_true, y_pred, **kwargs))
    assert ours["span_recall"] == pytest.approx(recall_score(y_true, y_pred, **kwargs))
    assert ours["span_f1"] == pytest.approx(f1_score(y_true, y_pred, **kwargs))


def test_post_level_metrics_by_hand():
    gold = [
        {"text": "a", "is_beauty": True, "brands": [{"start": 0, "end": 3, "brand": "OPI", "category": "nails"}]},
        {"text": "b", "is_beauty": False, "brands": []},
        {"text": "c", "is_beauty": True, "brands": [{"start": 0, "end": 2, "brand": "MAC", "category": "makeup"},
                                                   {"start": 5, "end": 9, "brand": "Dior", "category": "makeup"}]},
    ]
    pred = [
        {"is_beauty": True, "brands": [{"start": 0, "end": 3, "brand": "opi", "category": "makeup"}]},
        {"is_beauty": True, "brands": []},
        {"is_beauty": False, "brands": [{"start": 0, "end": 2, "brand": "MAC", "category": "makeup"}]},
    ]
    assert brand_exact_match(gold, pred) == pytest.approx(2 / 3)  # casefolded sets; post 3 misses Dior
    assert category_accuracy(gold, pred) == pytest.approx(1 / 2)
    assert beauty_f1(gold, pred) == pytest.approx(0.5)  # tp 1, fp 1, fn 1
    assert brand_count_accuracy(gold, pred) == pytest.approx(2 / 3)
    assert brand_count_accuracy(gold, pred, pred_counts=[1, 0, 2]) == 1.0
    figures = evaluate(gold, pred)
    assert (figures["span_tp"], figures["span_pred"], figures["span_gold"]) == (2, 2, 3)
    with pytest.raises(ValueError):
        evaluate(gold, pred[:2])
