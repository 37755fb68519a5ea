"""Predictors by name for `evaluate` and `predict`: `get_predictor("gazetteer")`, or a generation number.

A Predictor maps texts to interchange rows: {"is_beauty": bool, "brands": [{start, end, text, brand,
category, ...}]}. Generations are served by modeling.services.serving (imported when one is asked for,
so this module stays free of torch).
"""

from __future__ import annotations

from typing import Callable, Protocol

from kb.linking import BEAUTY_WORDS


class Predictor(Protocol):
    name: str

    def predict(self, texts: list[str]) -> list[dict]: ...


class UnknownPredictor(LookupError):
    pass


class GazetteerPredictor:
    """KB alias matching. is_beauty: a brand matched OR the text has beauty wording (kb.linking.BEAUTY_WORDS)."""

    name = "gazetteer"

    def __init__(self, index=None):
        if index is None:  # the served index's gazetteer, built once per index, not per request
            from kb.index import get_gazetteer

            self.gazetteer = get_gazetteer()
        else:
            from kb.gazetteer import Gazetteer

            self.gazetteer = Gazetteer(index)

    def predict(self, texts: list[str]) -> list[dict]:
        out = []
        for text in texts:
            spans = [m.as_span() for m in self.gazetteer.find(text)]
            out.append({"is_beauty": bool(spans) or bool(BEAUTY_WORDS.search(text)), "brands": spans})
        return out


_FACTORIES: dict[str, Callable[[], Predictor]] = {"gazetteer": GazetteerPredictor}


def register(name: str, factory: Callable[[], Predictor]) -> None:
    _FACTORIES[name] = factory


def get_predictor(name: str) -> Predictor:
    name = str(name).strip()
    number = name.removeprefix("gen-")
    if number.isdigit():
        try:
            from modeling.services.serving import generation_predictor
        except ImportError as exc:
            raise UnknownPredictor(f"Generation predictors are not available (student inference is not installed: {exc}); "
                                   f"got {name!r}.") from exc
        return generation_predictor(int(number))
    if name not in _FACTORIES:
        raise UnknownPredictor(f"Unknown model {name!r}: use a generation number or one of {', '.join(sorted(_FACTORIES))}.")
    return _FACTORIES[name]()


def gazetteer_predict_texts(texts: list[str]) -> list[dict]:
    return GazetteerPredictor().predict(texts)


INTERCHANGE_SPAN_KEYS = ("start", "end", "text", "brand", "category")


def to_interchange(row: dict, prediction: dict) -> dict:
    """An input row with the predicted is_beauty and brands, in the interchange format."""
    out = {k: v for k, v in row.items() if k not in ("brands", "is_beauty")}
    out["is_beauty"] = prediction["is_beauty"]
    out["brands"] = [{k: s.get(k) for k in INTERCHANGE_SPAN_KEYS} for s in prediction["brands"]]
    return out
