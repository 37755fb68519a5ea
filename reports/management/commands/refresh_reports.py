from django.core.management.base import BaseCommand

from reports.cube import cube_refresh


class Command(BaseCommand):
    help = "Rebuild the reports page's aggregates now if the data changed (--force: even if not)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true")

    def handle(self, *args, **options):
        state = cube_refresh(force=options["force"])
        self.stdout.write(f"Report aggregates as of {state.built_at:%Y-%m-%d %H:%M:%S} UTC: {state.cells} cells, "
                          f"{state.pairs} brand pairs (last build {state.seconds} s).")
