from django.core.management.base import BaseCommand

from modeling.services.sweeper import sweep_stale


class Command(BaseCommand):
    help = ("Resend imports, freezes, pre-label runs and trainings that made no progress for SWEEP_STALE_SECONDS "
            "(their worker died), or fail them with the reason after SWEEP_MAX_RESUMES resends. Celery beat runs "
            "this every SWEEP_SECONDS.")

    def add_arguments(self, parser):
        parser.add_argument("--stale-seconds", type=float, help="override SWEEP_STALE_SECONDS")

    def handle(self, *args, stale_seconds, **options):
        report = sweep_stale(stale_seconds=stale_seconds)
        for name in report.resumed:
            self.stdout.write(f"resumed {name}")
        for name in report.failed:
            self.stdout.write(f"failed {name}")
        if not (report.resumed or report.failed):
            self.stdout.write("nothing stale")
