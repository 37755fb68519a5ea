from django.db import models
from django.db.models import Q


class ApiToken(models.Model):
    """A bearer token for /api/. Only its sha256 is stored: the token itself is shown once, at creation."""

    class Scope(models.TextChoices):
        READ = "read"
        WRITE = "write"  # read + ingest

    name = models.CharField(max_length=100)
    # The token's first characters, so a token found in a log or a script can be told apart without its secret.
    prefix = models.CharField(max_length=16)
    token_sha256 = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.READ)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "-created_at"]
        constraints = [
            # Commands name tokens by name; a revoked token frees its name for a replacement.
            models.UniqueConstraint(fields=["name"], condition=Q(revoked_at__isnull=True), name="api_token_live_name_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.scope}{', revoked' if self.revoked_at else ''})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        return scope == self.Scope.READ or self.scope == self.Scope.WRITE
