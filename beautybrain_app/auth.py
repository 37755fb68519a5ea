"""Login with throttling of failed attempts per (username, client address)."""

import hashlib
import logging
import time

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError

log = logging.getLogger("beautybrain.auth")


def _keys(request, username: str) -> list[str]:
    """One counter per (username, client address), and one per username from any address at
    LOGIN_FAILURE_USER_FACTOR times the limit, so spreading guesses over many addresses does not help."""
    name = (username or "").casefold()
    return ["login-failures:" + hashlib.sha256(who.encode()).hexdigest()
            for who in (f"{name}|{request.META.get('REMOTE_ADDR', '')}", f"{name}|*")]


def _failures(key: str) -> int:
    """Failures in the window that started at the first one. The window is stored with the count
    (the file cache's incr() restarts an entry's timeout, so a timeout alone would never end)."""
    entry = cache.get(key)
    if not entry or time.time() - entry[1] > settings.LOGIN_FAILURE_WINDOW_S:
        return 0
    return entry[0]


def _fail(key: str) -> None:
    entry = cache.get(key)
    now = time.time()
    if not entry or now - entry[1] > settings.LOGIN_FAILURE_WINDOW_S:
        entry = (0, now)
    cache.set(key, (entry[0] + 1, entry[1]), timeout=max(1, int(settings.LOGIN_FAILURE_WINDOW_S - (now - entry[1]))))


class ThrottleMixin:
    """Failed logins are counted and, past the limit, refused before the password is checked."""

    def clean(self):
        username = self.cleaned_data.get("username", "")
        pair, anywhere = _keys(self.request, username)
        limits = settings.LOGIN_FAILURE_LIMIT
        if _failures(pair) >= limits or _failures(anywhere) >= limits * settings.LOGIN_FAILURE_USER_FACTOR:
            log.warning("login throttled", extra={"username": username})
            raise ValidationError(
                "Too many failed attempts. Wait a few minutes, then try again.", code="throttled"
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            _fail(pair)
            _fail(anywhere)
            log.info("login failed", extra={"username": username})
            raise
        cache.delete(pair)
        return cleaned


class ThrottledAuthenticationForm(ThrottleMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottleMixin, AdminAuthenticationForm):
    """/admin/login/ is a second way in: the same throttle."""


class ThrottledLoginView(auth_views.LoginView):
    form_class = ThrottledAuthenticationForm
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if any(e.code == "throttled" for e in form.non_field_errors().as_data()):
            response.status_code = 429
        return response


class LogoutView(auth_views.LogoutView):
    pass
