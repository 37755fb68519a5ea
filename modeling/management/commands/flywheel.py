from django.core.management.base import BaseCommand, CommandError

from modeling.services.flywheel import flywheel_tick, policy_decide


class Command(BaseCommand):
    help = ("Apply the retraining policy (FLYWHEEL_* settings) once: when it says so, freeze, train, evaluate, "
            "export and promote if the gate passes. Training goes to the gpu queue unless --sync.")

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one tick (the periodic task runs it on a schedule)")
        parser.add_argument("--sync", action="store_true", help="do the work in this process")
        parser.add_argument("--dry-run", action="store_true", help="print what the policy would decide, do nothing")

    def handle(self, *args, once, sync, dry_run, **options):
        if dry_run:
            d = policy_decide()
            self.stdout.write(f"{'go' if d.go else 'skip'}: {d.reason}")
            return
        if not once:
            raise CommandError("Use --once (Celery beat runs the tick periodically), or --dry-run.")
        tick = flywheel_tick(trigger="command", sync=sync)
        if tick is None:
            raise CommandError("Another flywheel tick is running.")
        gen = f" gen-{tick.generation.number}" if tick.generation_id else ""
        self.stdout.write(f"{tick.outcome or 'queued on the gpu queue'}{gen}: {tick.reason}")
