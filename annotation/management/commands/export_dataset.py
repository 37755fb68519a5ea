from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.models import DatasetVersion
from annotation.services.datasets import DatasetError, dataset_version_export


class Command(BaseCommand):
    help = ("Export dataset version N into OUTDIR: train/val/test.jsonl (gold), silver.jsonl, manifest.json, "
            "and bio/*.conll when --tokenizer is given.")

    def add_arguments(self, parser):
        parser.add_argument("number", type=int)
        parser.add_argument("outdir", type=Path)
        parser.add_argument("--tokenizer", default="",
                            help="A fast tokenizer: local directory or a name in the local Hugging Face cache.")

    def handle(self, *args, number: int, outdir: Path, tokenizer: str, **options):
        version = DatasetVersion.objects.filter(number=number).first()
        if version is None:
            raise CommandError(f"No dataset version {number}.")
        try:
            manifest = dataset_version_export(version=version, outdir=outdir, tokenizer=tokenizer or None)
        except (DatasetError, OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        for name, f in manifest["files"].items():
            self.stdout.write(f"{outdir / name}: {f['lines']} lines, sha256 {f['sha256']}")
        if "bio" in manifest:
            self.stdout.write(f"{outdir / 'bio'}: {manifest['bio']['stats']}")
        self.stdout.write(f"v{version.number} sha256 {manifest['sha256']} (verified)")
