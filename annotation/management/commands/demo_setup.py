from django.core.management.base import BaseCommand

from annotation.services.demo import demo_load, demo_users_ensure


class Command(BaseCommand):
    help = "Load the demo brand KB and posts and create one user per role (idempotent)."

    def handle(self, *args, **options):
        demo_load(log=self.stdout.write)
        for username, password in demo_users_ensure().items():
            self.stdout.write(f"  {username:<11} {password}")
