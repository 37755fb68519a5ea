"""The student hook of modeling.services.prelabel: Prediction fields for a batch of posts."""

from __future__ import annotations

from .predictor import generation_predictor


def predict_posts(generation, posts) -> list[dict]:
    predictor = generation_predictor(generation.number)
    out = []
    for pred in predictor.predict([p.text for p in posts]):
        spans = pred["brands"]
        confidence = min((s["confidence"] for s in spans), default=None)
        out.append({"spans": spans, "is_beauty": pred["is_beauty"], "brand_count": pred["brand_count"],
                    "confidence": confidence if confidence is not None else pred["beauty_score"], "status": "ok"})
    return out
