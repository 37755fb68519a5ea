"""Generation predictors for `evaluate`/`predict` and pre-labelling: registered with modeling.predictors.

The only module of the student package that reads the database, lazily, to find a generation's artifact."""

from __future__ import annotations

import threading
from pathlib import Path

from modeling.predictors import UnknownPredictor, register_generation_predictor

from .predict import StudentPredictor

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
    from django.conf import settings

    from modeling.models import ModelGeneration

    generation = ModelGeneration.objects.filter(number=number).first()
    if generation is None:
        raise UnknownPredictor(f"There is no generation {number}.")
    if not generation.artifact_path or not Path(generation.artifact_path, "adapter").exists():
        raise UnknownPredictor(f"gen-{number} has no trained model yet (status {generation.status}).")
    return GenerationPredictor(number, load_artifact(generation.artifact_path, settings.TORCH_DEVICE))


register_generation_predictor(generation_predictor)
