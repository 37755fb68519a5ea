from django.core.management.base import BaseCommand, CommandError

from modeling.services.flywheel import flywheel_tick, policy_decide


class Command(BaseCommand):
    help = ("Apply the retraining policy (FLYWHEEL_* settings) once: when it says so, freeze, train, evaluate, "
            "export and promote if the gate passes. Training goes to the gpu queue unless --sync.")

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one tick (the periodic task runs it on a schedule)")
        parser.add_argument("--sync", action="store_true", help="do the work in this process")
        parser.add_argument("--dry-run", action="store_true", help="print what the policy would decide, do nothing")
        parser.add_argument("--shadow", type=int, metavar="GEN", help="let generation GEN shadow the promoted one")
        parser.add_argument("--unshadow", action="store_true", help="stop the active shadow release")

    def handle(self, *args, once, sync, dry_run, shadow, unshadow, **options):
        if shadow is not None or unshadow:
            return self.shadow(shadow)
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

    def shadow(self, number: int | None) -> None:
        from modeling.models import ModelGeneration
        from modeling.services.shadow import ShadowError, shadow_start, shadow_stop

        if number is None:
            self.stdout.write(f"Stopped {shadow_stop()} shadow release(s).")
            return
        candidate = ModelGeneration.objects.filter(number=number).first()
        if candidate is None:
            raise CommandError(f"There is no generation {number}.")
        try:
            release = shadow_start(candidate=candidate)
        except ShadowError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{release} on {release.sample_share:.0%} of the posts the promoted student labels.")
