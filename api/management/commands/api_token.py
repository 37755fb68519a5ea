from django.core.management.base import BaseCommand, CommandError

from api.models import ApiToken
from api.services import ApiTokenError, api_token_create, api_token_revoke


class Command(BaseCommand):
    help = "Create, revoke or list API tokens. A new token is printed once; only its hash is stored."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="print a new token (once)")
        create.add_argument("--name", required=True)
        create.add_argument("--scope", choices=ApiToken.Scope.values, default=ApiToken.Scope.READ)
        revoke = sub.add_parser("revoke", help="revoke the live token with this name")
        revoke.add_argument("--name", required=True)
        sub.add_parser("list", help="every token, live and revoked (never the secret)")

    def handle(self, *args, action, **options):
        try:
            if action == "create":
                token, secret = api_token_create(name=options["name"], scope=options["scope"])
                self.stderr.write(f"Created {token.scope} token {token.name!r}. Store it now: it is not shown again.")
                self.stdout.write(secret)
            elif action == "revoke":
                token = api_token_revoke(name=options["name"])
                self.stdout.write(f"Revoked {token.name!r} ({token.prefix}…).")
            else:
                for t in ApiToken.objects.all():
                    state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "live"
                    used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
                    self.stdout.write(f"{t.name}\t{t.prefix}…\t{t.scope}\t{state}\tlast used {used}")
        except ApiTokenError as exc:
            raise CommandError(str(exc)) from exc
