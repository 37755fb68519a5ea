import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from modeling.management.commands.evaluate import _require_kb, read_jsonl
from modeling.predictors import UnknownPredictor, get_predictor, to_interchange

BATCH = 256


class Command(BaseCommand):
    help = "Write predictions for posts (JSONL) in the interchange format."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True,
                            help="gazetteer, a generation number, or cascade (promoted student + teacher)")
        parser.add_argument("--teacher-share", type=float, default=None,
                            help="cascade: share of posts sent to the teacher (default CASCADE_TEACHER_SHARE)")
        parser.add_argument("--data", required=True, type=Path, help="input JSONL with `text` per line")
        parser.add_argument("--out", required=True, type=Path)

    def handle(self, *args, model, data, out, teacher_share, **options):
        if model == "cascade":
            return self.cascade(data, out, teacher_share)
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

    def cascade(self, data: Path, out: Path, share: float | None) -> None:
        from django.conf import settings

        from modeling.services.cascade import cascade_predict_texts
        from modeling.services.prelabel import SourceUnavailable

        share = settings.CASCADE_TEACHER_SHARE if share is None else share
        _require_kb("cascade")
        rows = read_jsonl(data)
        try:
            preds, routed = cascade_predict_texts(texts=[r["text"] for r in rows], share=share)
        except SourceUnavailable as exc:
            raise CommandError(str(exc)) from exc
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".part")
        with tmp.open("w", encoding="utf-8") as f:
            for row, pred in zip(rows, preds, strict=True):
                f.write(json.dumps({**to_interchange(row, pred), "labelled_by": pred.get("source", "student")},
                                   ensure_ascii=False) + "\n")
        tmp.replace(out)
        self.stdout.write(f"Wrote {len(rows)} predictions to {out}; {len(routed)} from the teacher (share {share:g})")
