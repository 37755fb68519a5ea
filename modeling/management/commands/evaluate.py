import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from modeling.metrics import brand_count_accuracy, evaluate
from modeling.predictors import UnknownPredictor, get_predictor
from modeling.speed import measure_speed


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class Command(BaseCommand):
    help = "Evaluate a model (gazetteer or a generation number) on labelled posts in the interchange format."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="gazetteer, or a generation number")
        parser.add_argument("--data", required=True, type=Path, help="labelled JSONL (interchange format)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, model, data, json: bool, **options):
        rows = read_jsonl(data)
        gold = [r for r in rows if "brands" in r or "is_beauty" in r]
        if not gold:
            raise CommandError(f"{data} has no labelled rows (no `brands` / `is_beauty`).")
        try:
            predictor = get_predictor(model)
        except UnknownPredictor as exc:
            raise CommandError(str(exc)) from exc
        _require_kb(model)
        texts = [r["text"] for r in gold]
        predictions = predictor.predict(texts)
        figures = {"model": model, "data": str(data), **evaluate(gold, predictions)}
        if all("brand_count_head" in p for p in predictions):  # a student's count head, beside len(brands)
            figures["count_head_accuracy"] = brand_count_accuracy(gold, predictions,
                                                                  [p["brand_count_head"] for p in predictions])
        figures.update(measure_speed(predictor.predict, texts))
        if json:
            self.stdout.write(_json_dumps(figures))
            return
        for key, value in figures.items():
            self.stdout.write(f"{key:>22}: {value:.4f}" if isinstance(value, float) else f"{key:>22}: {value}")


def _require_kb(model: str) -> None:
    from kb.models import Brand

    if model == "gazetteer" and not Brand.objects.exists():
        raise CommandError("The knowledge base is empty: load it first (python manage.py import_brands data/demo/kb_brands.csv).")


def _json_dumps(obj) -> str:
    return json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in obj.items()})
