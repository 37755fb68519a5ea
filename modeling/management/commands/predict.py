import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from modeling.management.commands.evaluate import _require_kb, read_jsonl
from modeling.predictors import UnknownPredictor, get_predictor, to_interchange

BATCH = 256


class Command(BaseCommand):
    help = "Write predictions for posts (JSONL) in the interchange format."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="gazetteer, or a generation number")
        parser.add_argument("--data", required=True, type=Path, help="input JSONL with `text` per line")
        parser.add_argument("--out", required=True, type=Path)

    def handle(self, *args, model, data, out, **options):
        try:
            predictor = get_predictor(model)
        except UnknownPredictor as exc:
            raise CommandError(str(exc)) from exc
        _require_kb(model)
        rows = read_jsonl(data)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".part")
        with tmp.open("w", encoding="utf-8") as f:
            for i in range(0, len(rows), BATCH):
                batch = rows[i:i + BATCH]
                for row, pred in zip(batch, predictor.predict([r["text"] for r in batch]), strict=True):
                    f.write(json.dumps(to_interchange(row, pred), ensure_ascii=False) + "\n")
        tmp.replace(out)
        self.stdout.write(f"Wrote {len(rows)} predictions to {out}")
