from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotation.services.datasets import DatasetError, dataset_freeze_now


class Command(BaseCommand):
    help = "Freeze every gold annotation (and silver teacher labels) into a new dataset version; prints its number."

    def add_arguments(self, parser):
        parser.add_argument("--note", default="", help="What changed since the last version.")
        parser.add_argument("--user", default="", help="Username recorded as the creator.")

    def handle(self, *args, note: str, user: str, **options):
        creator = None
        if user:
            creator = get_user_model().objects.filter(username=user).first()
            if creator is None:
                raise CommandError(f"No user {user!r}.")
        try:
            version = dataset_freeze_now(user=creator, note=note)
        except DatasetError as exc:
            raise CommandError(str(exc)) from exc
        c = version.counts
        self.stderr.write(
            f"v{version.number}: {c['gold']} gold ({c['splits']['train']['gold']} train, {c['splits']['val']['gold']} val, "
            f"{c['splits']['test']['gold']} test), {c['silver']} silver, {c['spans']} spans, sha256 {version.sha256}"
        )
        self.stdout.write(str(version.number))
