"""Content-Security-Policy on every response: scripts only from our own static files, so a brand name or
post text that slipped past escaping could not run. Styles allow inline `style=` (progress bars, chart
widths); nothing else inline runs."""

from __future__ import annotations

from django.conf import settings


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY

    def __call__(self, request):
        response = self.get_response(request)
        if self.policy:
            response.headers.setdefault("Content-Security-Policy", self.policy)
        return response
