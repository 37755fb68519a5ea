"""Login with throttling of failed attempts per (username, client address)."""

import hashlib
import logging

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError

log = logging.getLogger("beautybrain.auth")


def _key(request, username: str) -> str:
    who = f"{(username or '').casefold()}|{request.META.get('REMOTE_ADDR', '')}"
    return "login-failures:" + hashlib.sha256(who.encode()).hexdigest()


class ThrottledAuthenticationForm(AuthenticationForm):
    def clean(self):
        username = self.cleaned_data.get("username", "")
        key = _key(self.request, username)
        if (cache.get(key) or 0) >= settings.LOGIN_FAILURE_LIMIT:
            log.warning("login throttled", extra={"username": username})
            raise ValidationError(
                "Too many failed attempts. Wait a few minutes, then try again.", code="throttled"
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            try:
                cache.incr(key)
            except ValueError:
                cache.set(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_S)
            log.info("login failed", extra={"username": username})
            raise
        cache.delete(key)
        return cleaned


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
