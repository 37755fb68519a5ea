import io
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from kb.services import KbFileNotUtf8, brands_import_csv, kb_csv_decode


class Command(BaseCommand):
    help = "Import brands and aliases from a CSV in the kb_brands.csv format (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)

    def handle(self, *args, path: Path, **options):
        if not path.exists():
            raise CommandError(f"{path} does not exist")
        try:
            text = kb_csv_decode(path.read_bytes())
        except KbFileNotUtf8 as exc:
            raise CommandError(f"{path}: {exc}") from None
        result = brands_import_csv(stream=io.StringIO(text, newline=""))
        for error in result.errors:
            self.stderr.write(f"line {error['line']}: {error['error']}")
        self.stdout.write(result.summary())
