import json

from django.core.management.base import BaseCommand, CommandError

from modeling.models import ExportState, ModelGeneration
from modeling.services.export import ExportRefused, generation_export, generation_export_enqueue


class Command(BaseCommand):
    help = ("Quantise a generation's student (AWQ 4-bit for Qwen-style backbones, int8 for CPU encoders), "
            "evaluate it on the generation's test split and gate it on span F1. Queued on the gpu queue, or "
            "--sync in this process (prints the export figures as JSON).")

    def add_arguments(self, parser):
        parser.add_argument("generation", help="generation number (or gen-N)")
        parser.add_argument("--format", dest="fmt", choices=["awq", "int8"], default=None,
                            help="default: awq for decoder backbones (Qwen2/Qwen2.5), int8 otherwise")
        parser.add_argument("--sync", action="store_true", help="export here instead of on the gpu queue")
        parser.add_argument("--force", action="store_true", help="redo an export that already finished")

    def handle(self, *args, generation, fmt, sync, force, **options):
        number = str(generation).removeprefix("gen-")
        row = ModelGeneration.objects.filter(number=int(number) if number.isdigit() else -1).first()
        if row is None:
            raise CommandError(f"There is no generation {generation}.")
        try:
            if not sync:
                generation_export_enqueue(generation=row, fmt=fmt, force=force)
                self.stderr.write(f"gen-{row.number}: export queued on the gpu queue")
                return
            metrics = generation_export(generation_id=row.pk, fmt=fmt, force=force)
        except ExportRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(metrics))
        if metrics["state"] == ExportState.ERROR:
            raise CommandError(f"gen-{row.number} export failed: {metrics.get('error')}")
        if metrics["state"] == ExportState.FAILED:
            self.stderr.write(f"gen-{row.number} export FAILED the gate: {metrics.get('reason')} (kept for audit, "
                              "not served)")
