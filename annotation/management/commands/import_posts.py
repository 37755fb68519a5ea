from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.services.importing import detect_format, import_batch_create, import_batch_run


class Command(BaseCommand):
    help = "Import posts from JSONL (interchange format) or CSV; labelled rows become gold annotations."

    def add_arguments(self, parser):
        parser.add_argument("paths", type=Path, nargs="+")

    def handle(self, *args, paths: list[Path], **options):
        failed = False
        for path in paths:
            if not path.exists():
                raise CommandError(f"{path} does not exist")
            try:
                detect_format(path.name)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            batch = import_batch_create(path=path.resolve(), filename=path.name)
            batch = import_batch_run(batch=batch)
            for error in batch.errors:
                self.stderr.write(f"{path.name}: line {error['line']}: {error['error']}")
            if batch.error_count > len(batch.errors):
                self.stderr.write(f"... and {batch.error_count - len(batch.errors)} more errors")
            if batch.failure:
                self.stderr.write(f"{path.name}: import failed: {batch.failure}")
                failed = True
            self.stdout.write(
                f"{path.name}: {batch.posts_created} posts created, {batch.reposts_created} reposts of a stored text, "
                f"{batch.posts_duplicate} already present, "
                f"{batch.gold_created} gold annotations ({batch.spans_created} spans), "
                f"{batch.error_count} bad rows (batch #{batch.pk})"
            )
        if failed:
            raise CommandError("import failed")
