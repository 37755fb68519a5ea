"""The debug page's settings, with the passwords inside URLs hidden (Django hides only settings whose
*name* looks secret: CELERY_BROKER_URL and DATABASE_URL carry theirs in the value)."""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter

_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+(?=@)", re.I)


def hide_url_passwords(value):
    if isinstance(value, str):
        return _PASSWORD_IN_URL.sub(r"\g<head>********", value)
    return value


class ReporterFilter(SafeExceptionReporterFilter):
    def cleanse_setting(self, key, value):
        value = super().cleanse_setting(key, value)
        if isinstance(value, dict):
            return {k: hide_url_passwords(v) if isinstance(v, str) else v for k, v in value.items()}
        return hide_url_passwords(value)
