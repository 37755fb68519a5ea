"""Serving a generation: its artifact loaded once per process, as a Predictor for `evaluate`, `predict`,
the API and pre-labelling. The only place that maps a ModelGeneration row to a loaded student."""

from __future__ import annotations

import threading
from pathlib import Path

from django.conf import settings

from modeling.models import ModelGeneration
from modeling.predictors import UnknownPredictor
from modeling.student.predict import StudentPredictor

_lock = threading.Lock()
_loaded: dict[str, StudentPredictor] = {}


class GenerationPredictor:
    def __init__(self, number: int, predictor: StudentPredictor):
        self.name = f"gen-{number}"
        self.number = number
        self.student = predictor

    def predict(self, texts: list[str]) -> list[dict]:
        return self.student.predict(texts)


def load_artifact(path: str | Path, device: str = "cpu") -> StudentPredictor:
    """One loaded model per artifact per process (workers keep it between batches)."""
    key = f"{Path(path).resolve()}:{device}"
    with _lock:
        if key not in _loaded:
            _loaded[key] = StudentPredictor.load(path, device=device)
        return _loaded[key]


def generation_predictor(number: int) -> GenerationPredictor:
    generation = ModelGeneration.objects.filter(number=number).first()
    if generation is None:
        raise UnknownPredictor(f"There is no generation {number}.")
    if not generation.artifact_path or not Path(generation.artifact_path, "adapter").exists():
        raise UnknownPredictor(f"gen-{number} has no trained model yet (status {generation.status}).")
    return GenerationPredictor(number, load_artifact(generation.artifact_path, settings.TORCH_DEVICE))


def predict_posts(generation: ModelGeneration, posts) -> list[dict]:
    """Prediction fields for a batch of posts, for pre-labelling with the student source."""
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
