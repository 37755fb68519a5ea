"""API token writes: create (the token is returned once, only its hash is kept), revoke, and use."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from api.models import ApiToken

TOKEN_PREFIX = "bb_"
PREFIX_LENGTH = len(TOKEN_PREFIX) + 8
# last_used_at is a hint for admins, not an audit log: one write per token per minute, not per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiTokenError(ValueError):
    pass


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def api_token_create(*, name: str, scope: str = ApiToken.Scope.READ) -> tuple[ApiToken, str]:
    """A new token and its secret, which is not stored and cannot be shown again."""
    name = name.strip()
    if not name:
        raise ApiTokenError("A token needs a name.")
    if scope not in ApiToken.Scope.values:
        raise ApiTokenError(f"Unknown scope {scope!r}; use {' or '.join(ApiToken.Scope.values)}.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            row = ApiToken.objects.create(name=name, prefix=token[:PREFIX_LENGTH], token_sha256=token_hash(token),
                                          scope=scope)
    except IntegrityError as exc:
        raise ApiTokenError(f"A live token named {name!r} exists; revoke it first or choose another name.") from exc
    return row, token


def api_token_revoke(*, name: str) -> ApiToken:
    token = ApiToken.objects.filter(name=name, revoked_at__isnull=True).first()
    if token is None:
        raise ApiTokenError(f"No live token named {name!r}.")
    api_tokens_revoke(tokens=ApiToken.objects.filter(pk=token.pk))
    token.refresh_from_db()
    return token


def api_tokens_revoke(*, tokens: QuerySet[ApiToken]) -> int:
    return tokens.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


def api_token_authenticate(*, token: str) -> ApiToken | None:
    """The live token with this secret, its last use noted; None for an unknown or revoked one."""
    row = ApiToken.objects.filter(token_sha256=token_hash(token), revoked_at__isnull=True).first()
    if row is None:
        return None
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now
    return row
