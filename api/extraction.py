"""Brand extraction for /api/extract through the predictor registry (modeling.predictors)."""

from __future__ import annotations

from modeling.predictors import Predictor, UnknownPredictor, get_predictor

PROMOTED = "promoted"


class ModelUnavailable(RuntimeError):
    """Nothing can serve this model now (no promoted generation, or no student inference installed)."""


class ModelUnknown(LookupError):
    pass


def predictor_for(model: str) -> Predictor:
    if model == PROMOTED:
        from modeling.models import ModelGeneration

        number = ModelGeneration.objects.filter(status=ModelGeneration.Status.PROMOTED).values_list(
            "number", flat=True).first()
        if number is None:
            raise ModelUnavailable("No model generation is promoted yet, so model='promoted' cannot be served. "
                                   "Use model='gazetteer' (the brand dictionary) or a trained generation ('gen-N'), "
                                   "or promote one on the Models page.")
        try:
            return get_predictor(f"gen-{number}")
        except UnknownPredictor as exc:
            raise ModelUnavailable(f"gen-{number} is promoted but cannot be loaded here: {exc}") from exc
    try:
        return get_predictor(model)
    except UnknownPredictor as exc:
        raise ModelUnknown(str(exc)) from exc


def extract_texts(*, texts: list[str], model: str = PROMOTED) -> tuple[str, list[dict]]:
    """The predictor's name and one interchange row ({"is_beauty", "brands"}) per text."""
    predictor = predictor_for(model)
    return predictor.name, predictor.predict(texts)
