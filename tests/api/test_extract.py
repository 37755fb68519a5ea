"""POST /api/extract through the predictor registry: gazetteer, the promoted generation, gen-N."""

import pytest

from annotation.models import DatasetVersion
from modeling import predictors
from modeling.models import ModelGeneration
from modeling.services import serving
from tests.api.conftest import assert_json_error


class FakeGeneration:
    """Stands in for a trained student (which needs torch and an artifact): one span on the first word."""

    def __init__(self, number: int):
        self.name = f"gen-{number}"

    def predict(self, texts):
        return [{"is_beauty": True, "beauty_score": 0.93, "brand_count": 1,
                 "brands": [{"start": 0, "end": len(t.split()[0]), "text": t.split()[0], "brand": "Made Up",
                             "brand_id": None, "category": "skincare", "confidence": 0.8}]} for t in texts]


@pytest.fixture
def generations(db, monkeypatch):
    dataset = DatasetVersion.objects.create(number=1)

    def factory(number: int):
        if not ModelGeneration.objects.filter(number=number).exists():
            raise predictors.UnknownPredictor(f"There is no generation {number}.")
        return FakeGeneration(number)

    monkeypatch.setattr(serving, "generation_predictor", factory)
    return lambda number, status: ModelGeneration.objects.create(number=number, base_model="tiny",
                                                                 dataset_version=dataset, status=status)


def test_gazetteer_finds_kb_brands_with_offsets(api_as, kb):
    texts = ["my SK2 essence > la mer tbh", "going to the gym then brunch", "雅诗兰黛小棕瓶真的好用"]
    response = api_as("read").post("/api/extract", {"texts": texts, "model": "gazetteer"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"] == "gazetteer"
    first, second, _ = body["results"]
    assert [(b["text"], b["brand"], b["category"]) for b in first["brands"]] == [
        ("SK2", "SK-II", "skincare"), ("la mer", "La Mer", "skincare")]
    for b in first["brands"]:
        assert texts[0][b["start"]:b["end"]] == b["text"] and isinstance(b["brand_id"], int)
    assert (first["is_beauty"], second["is_beauty"], second["brands"]) == (True, False, [])


def test_promoted_is_the_default_and_503_when_none_is_promoted(api_as, generations):
    api = api_as("read")
    body = assert_json_error(api.post("/api/extract", {"texts": ["SK2 again"]}), 503, "No model generation is promoted")
    assert "gazetteer" in body["detail"]
    generations(3, "ready")
    assert_json_error(api.post("/api/extract", {"texts": ["SK2 again"]}), 503)
    generations(4, "promoted")
    response = api.post("/api/extract", {"texts": ["Glowlab serum", "Noname balm"]})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"] == "gen-4"
    assert [(r["brands"][0]["text"], r["brands"][0]["confidence"], r["beauty_score"]) for r in body["results"]] == [
        ("Glowlab", 0.8, 0.93), ("Noname", 0.8, 0.93)]
    # A generation by name, promoted or not.
    assert api.post("/api/extract", {"texts": ["x y"], "model": "gen-3"}).json()["model"] == "gen-3"


def test_unknown_models_and_limits_are_422(api_as, generations):
    api = api_as("read")
    assert_json_error(api.post("/api/extract", {"texts": ["x"], "model": "gen-99"}), 422, "There is no generation 99")
    assert_json_error(api.post("/api/extract", {"texts": ["x"], "model": "teacher"}), 422, "model")
    assert_json_error(api.post("/api/extract", {"texts": ["x"] * 65, "model": "gazetteer"}), 422, "64")
    assert_json_error(api.post("/api/extract", {"texts": [], "model": "gazetteer"}), 422)
    assert_json_error(api.post("/api/extract", {"texts": ["x" * 20_001], "model": "gazetteer"}), 422, "at most 20000 characters")
    assert_json_error(api.post("/api/extract", {"model": "gazetteer"}), 422, "texts")
