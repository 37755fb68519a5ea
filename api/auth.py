"""Bearer-token auth and the per-token rate limit for /api/ (django-ninja's auth and throttle hooks)."""

from __future__ import annotations

import re
import threading
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from ninja.errors import AuthenticationError, AuthorizationError
from ninja.security import HttpBearer
from ninja.throttling import BaseThrottle

from api.models import ApiToken
from api.services import api_token_authenticate

HOW_TO_GET_ONE = "create one with `python manage.py api_token create --name NAME`"


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`; the token must be live and allow `scope` (a write token also reads)."""

    def __init__(self, scope: str = ApiToken.Scope.READ):
        self.scope = scope
        super().__init__()

    def __call__(self, request: HttpRequest) -> ApiToken:
        header = request.headers.get("Authorization", "")
        if not header:
            raise AuthenticationError(message=f"Missing API token: send `Authorization: Bearer <token>` ({HOW_TO_GET_ONE}).")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError(message="Malformed Authorization header: use `Authorization: Bearer <token>`.")
        return self.authenticate(request, token.strip())

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken:
        row = api_token_authenticate(token=token)
        if row is None:
            raise AuthenticationError(message=f"Invalid or revoked API token ({HOW_TO_GET_ONE}).")
        if not row.allows(self.scope):
            raise AuthorizationError(message=f"Token {row.name!r} has the {row.scope} scope; this endpoint needs a "
                                             f"{self.scope} token.")
        return row


_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour|d|day)s?\s*$", re.IGNORECASE)
_PERIOD_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int] | None:
    """"600/min" -> (600, 60); "100/10s" -> (100, 10); "" or "0" -> None (no limit)."""
    if not rate or rate.strip() in ("0", "none", "off"):
        return None
    match = _RATE.match(rate)
    if match is None:
        raise ValueError(f"API_RATE_LIMIT {rate!r} is not like '600/min' (units: s, min, hour, day).")
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * _PERIOD_S[unit[0].lower()]


class TokenRateThrottle(BaseThrottle):
    """A fixed window per token in the Django cache (shared by every web process with Redis).

    Two cache operations a request, unlike ninja's sliding-window throttles, which keep every timestamp of
    the window in one cache value (600 of them at 600/min) and rewrite it on each request.
    """

    def __init__(self):
        self._local = threading.local()  # wait() is asked right after allow_request(), on the same thread

    def allow_request(self, request: HttpRequest) -> bool:
        token = getattr(request, "auth", None)
        limit = parse_rate(settings.API_RATE_LIMIT)
        if token is None or limit is None:
            return True
        count, period = limit
        now = time.time()
        window = int(now // period)
        key = f"api:rate:{token.pk}:{period}:{window}"
        cache.add(key, 0, timeout=period + 1)
        try:
            used = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=period + 1)
            used = 1
        self._local.wait = (window + 1) * period - now
        return used <= count

    def wait(self) -> float | None:
        return getattr(self._local, "wait", None)
