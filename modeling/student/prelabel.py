"""The student hook of modeling.services.prelabel: Prediction fields for a batch of posts."""

from __future__ import annotations

from .predictor import generation_predictor


def predict_posts(generation, posts) -> list[dict]:
    from modeling.services.export import serving_predictor

    # An export that passed its span-F1 gate serves in place of the full-precision artifact.
    predictor = serving_predictor(generation) or generation_predictor(generation.number)
    out = []
    for pred in predictor.predict([p.text for p in posts]):
        spans = pred["brands"]
        confidence = min((s["confidence"] for s in spans), default=None)
        out.append({"spans": spans, "is_beauty": pred["is_beauty"], "brand_count": pred["brand_count"],
                    "confidence": confidence if confidence is not None else pred["beauty_score"], "status": "ok"})
    return out
