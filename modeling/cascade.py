"""Cascade: the student labels every post; the posts it is least sure of go to the teacher (Django-free).

Raw softmax confidences are not probabilities of being wrong (a confident student is confidently wrong
on brands it never saw). So a small calibrator is fitted on the val split: logistic regression from a
few post-level features of the student's own outputs to "the student's spans are not exactly the
gold spans" (any error). Its output is a calibrated P(error) per post; the cascade sends the posts with
the highest P(error) to the teacher, never more than `share` of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

FEATURES = ("tok_unc_max", "tok_unc_mean", "tok_entropy_max", "n_brands", "min_span_conf", "unlinked",
            "beauty_margin", "log_len")
SHARES = (0.0, 0.05, 0.10, 0.20, 0.50, 1.0)


def post_features(predictor, texts: list[str], preds: list[dict]) -> list[list[float]]:
    """Per post: how unsure the tagger was on its least sure token and on average, plus what it decoded."""
    _, logprobs = predictor.tag_logprobs(texts)
    out = []
    for text, lp, pred in zip(texts, logprobs, preds):
        p = lp.exp()
        unc = 1 - p.max(-1).values if len(p) else torch.zeros(1)
        ent = -(p * lp).sum(-1) if len(p) else torch.zeros(1)
        brands = pred.get("brands") or []
        confs = [float(b.get("confidence") or 0.0) for b in brands]
        out.append([
            float(unc.max()), float(unc.mean()), float(ent.max()), float(len(brands)),
            min(confs, default=1.0), float(any(b.get("link") == "none" for b in brands)),
            abs(float(pred.get("beauty_score", 0.5)) - 0.5), math.log1p(len(text)),
        ])
    return out


def span_set(row: dict) -> set[tuple[int, int]]:
    return {(int(b["start"]), int(b["end"])) for b in row.get("brands") or []}


def any_error(pred: dict, gold: dict) -> bool:
    return span_set(pred) != span_set(gold)


@dataclass
class Calibrator:
    """Standardised features → logistic P(error); `fit` by L-BFGS with a small L2 penalty."""

    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    bias: float = 0.0
    base_rate: float = 0.5

    def fit(self, X: list[list[float]], errors: list[bool], l2: float = 0.01, steps: int = 200) -> "Calibrator":
        x = torch.tensor(X, dtype=torch.float64)
        y = torch.tensor([float(e) for e in errors], dtype=torch.float64)
        self.base_rate = float(y.mean()) if len(y) else 0.5
        self.mean = x.mean(0).tolist() if len(x) else [0.0] * len(FEATURES)
        self.std = x.std(0).clamp_min(1e-6).tolist() if len(x) > 1 else [1.0] * len(FEATURES)
        if len(set(errors)) < 2:  # all right or all wrong on val: nothing to rank by, say the base rate
            self.weights = [0.0] * len(FEATURES)
            self.bias = _logit(min(max(self.base_rate, 1e-3), 1 - 1e-3))
            return self
        z = (x - torch.tensor(self.mean, dtype=torch.float64)) / torch.tensor(self.std, dtype=torch.float64)
        w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
        b = torch.tensor([_logit(self.base_rate)], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y) + l2 * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.weights, self.bias = w.detach().tolist(), float(b.detach())
        return self

    def p_error(self, X: list[list[float]]) -> list[float]:
        out = []
        for row in X:
            s = self.bias + sum(w * (v - m) / sd for w, v, m, sd in zip(self.weights, row, self.mean, self.std))
            out.append(1 / (1 + math.exp(-max(-50.0, min(50.0, s)))))
        return out

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "mean": self.mean, "std": self.std, "weights": self.weights,
                "bias": self.bias, "base_rate": self.base_rate}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibrator":
        return cls(mean=d["mean"], std=d["std"], weights=d["weights"], bias=d["bias"], base_rate=d["base_rate"])


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def teacher_quota(n_posts: int, share: float) -> int:
    """How many posts may go to the teacher: floor, so the share is never exceeded."""
    return max(0, min(n_posts, math.floor(n_posts * max(0.0, min(1.0, share)) + 1e-9)))


def route(p_error: list[float], share: float, budget_posts: int | None = None) -> list[int]:
    """Indexes of the posts for the teacher: highest P(error) first, within the share and the budget."""
    k = teacher_quota(len(p_error), share)
    if budget_posts is not None:
        k = min(k, max(0, budget_posts))
    return sorted(range(len(p_error)), key=lambda i: (-p_error[i], i))[:k]


def combine(student: list[dict], teacher: dict[int, dict], chosen: list[int]) -> list[dict]:
    """The cascade's answer per post: the teacher's where it was asked (and answered), else the student's."""
    out = list(student)
    for i in chosen:
        if teacher.get(i) is not None:
            out[i] = teacher[i]
    return out


def calibration_figures(p_error: list[float], errors: list[bool], bins: int = 5) -> dict:
    """Brier score and expected calibration error of P(error) against what happened."""
    n = len(errors)
    if not n:
        return {"brier": None, "ece": None}
    brier = sum((p - float(e)) ** 2 for p, e in zip(p_error, errors)) / n
    ece = 0.0
    for b in range(bins):
        idx = [i for i, p in enumerate(p_error) if b / bins <= p < (b + 1) / bins or (b == bins - 1 and p == 1.0)]
        if idx:
            ece += len(idx) / n * abs(sum(p_error[i] for i in idx) / len(idx) - sum(errors[i] for i in idx) / len(idx))
    return {"brier": round(brier, 4), "ece": round(ece, 4)}


def dial(gold: list[dict], student: list[dict], teacher: list[dict | None], p_error: list[float],
         shares=SHARES, student_cost_per_1k: float = 0.0, teacher_cost_per_1k: float = 0.0) -> list[dict]:
    """Quality vs teacher share: span F1 of the cascade at each share, the teacher calls it made, cost per 1,000.
    `teacher[i]` None = no teacher answer for that post (the student's stands, the call is still counted)."""
    from modeling.metrics import evaluate

    rows = []
    answers = {i: t for i, t in enumerate(teacher) if t is not None}
    for share in shares:
        chosen = route(p_error, share)
        figures = evaluate(gold, combine(student, answers, chosen))
        calls = len(chosen)
        rows.append({"share": share, "teacher_calls": calls, "posts": len(gold),
                     "span_f1": round(figures["span_f1"], 4), "brand_em": round(figures["brand_em"], 4),
                     "cost_per_1k_usd": round(student_cost_per_1k + calls / max(1, len(gold)) * teacher_cost_per_1k, 6)})
    return rows


def gap_closed(rows: list[dict], share: float) -> float | None:
    """Share of the student-alone → teacher-everywhere span F1 gap the cascade closes at `share`."""
    by = {r["share"]: r["span_f1"] for r in rows}
    lo, hi = by.get(0.0), by.get(1.0)
    if lo is None or hi is None or share not in by or hi <= lo:
        return None
    return round((by[share] - lo) / (hi - lo), 4)
