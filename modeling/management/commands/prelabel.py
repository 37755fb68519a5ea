import time

from django.core.management.base import BaseCommand, CommandError

from modeling.models import PrelabelRun
from modeling.services.prelabel import SOURCES, SourceUnavailable, prelabel_run_is_finished, prelabel_run_start


class Command(BaseCommand):
    help = "Pre-label posts with the teacher, the gazetteer or the promoted student (Celery by default)."

    def add_arguments(self, parser):
        parser.add_argument("--source", required=True, choices=(*SOURCES, "cascade"),
                            help="cascade: the promoted student labels every post, its least sure share the teacher")
        parser.add_argument("--teacher-share", type=float, default=None,
                            help="cascade: share of posts sent to the teacher (default CASCADE_TEACHER_SHARE)")
        parser.add_argument("--limit", type=int, help="label at most N posts")
        parser.add_argument("--only-unlabelled", action="store_true", help="skip posts that have any annotation")
        parser.add_argument("--sync", action="store_true", help="run in this process instead of on Celery workers")
        parser.add_argument("--no-wait", action="store_true", help="enqueue and return without following progress")
        parser.add_argument("--poll", type=float, default=1.0, help="seconds between progress lines")
        parser.add_argument("--timeout", type=float, default=0, help="stop following after N seconds (0 = never)")

    def handle(self, *args, source, limit, only_unlabelled, sync, no_wait, poll, timeout, teacher_share, **options):
        if source == "cascade":
            return self.cascade(teacher_share, limit=limit, only_unlabelled=only_unlabelled, sync=sync,
                                no_wait=no_wait, poll=poll, timeout=timeout)
        try:
            run = prelabel_run_start(source=source, limit=limit, only_unlabelled=only_unlabelled, sync=sync)
        except SourceUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Prelabel run #{run.pk}: {run.total} posts, {source} {run.model_version}"
                          f"{' (in process)' if sync else ' (Celery)'}")
        if not sync and not no_wait:
            run = self.follow(run, poll=poll, timeout=timeout)
        self.report(run)
        if run.status == PrelabelRun.Status.FAILED:
            raise CommandError(run.message or "the run failed")

    def cascade(self, share, *, limit, only_unlabelled, sync, no_wait, poll, timeout):
        from django.conf import settings

        from modeling.services.cascade import cascade_prelabel

        share = settings.CASCADE_TEACHER_SHARE if share is None else share
        if not 0 <= share <= 1:
            raise CommandError("--teacher-share is a fraction between 0 and 1.")
        try:
            out = cascade_prelabel(share=share, limit=limit, only_unlabelled=only_unlabelled, sync=sync)
        except SourceUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Cascade: {out['posts']} posts, student run #{out['student'].pk}; "
                          f"{len(out['routed'])} least sure sent to the teacher (share {share:g})")
        self.report(out["student"])
        if out["teacher"] is not None:
            run = out["teacher"]
            if not sync and not no_wait:
                run = self.follow(run, poll=poll, timeout=timeout)
            self.report(run)

    def follow(self, run: PrelabelRun, *, poll: float, timeout: float) -> PrelabelRun:
        started = time.monotonic()
        last = None
        while not prelabel_run_is_finished(run):
            line = (run.status, run.done)
            if line != last:
                self.stdout.write(f"  {run.done}/{run.total} ({run.ok} ok, {run.failed} failed, {run.skipped} skipped) {run.status}")
                last = line
            if timeout and time.monotonic() - started > timeout:
                self.stdout.write(f"Still running after {timeout:g} s; follow it on /models/prelabel/{run.pk}/")
                break
            time.sleep(poll)
            run.refresh_from_db()
        return run

    def report(self, run: PrelabelRun) -> None:
        self.stdout.write(f"Run #{run.pk} {run.status}: {run.done}/{run.total} handled, {run.ok} ok, "
                          f"{run.failed} failed (invalid/refused/error), {run.skipped} skipped")
        if run.message:
            style = self.style.WARNING if run.status != PrelabelRun.Status.DONE else (lambda s: s)
            self.stdout.write(style(run.message))
