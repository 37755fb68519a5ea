from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from kb.services import brands_import_csv


class Command(BaseCommand):
    help = "Import brands and aliases from a CSV in the kb_brands.csv format (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)

    def handle(self, *args, path: Path, **options):
        if not path.exists():
            raise CommandError(f"{path} does not exist")
        with path.open(encoding="utf-8-sig", newline="") as stream:
            result = brands_import_csv(stream=stream)
        for error in result.errors:
            self.stderr.write(f"line {error['line']}: {error['error']}")
        self.stdout.write(result.summary())
