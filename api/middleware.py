"""JSON for every /api/ error, also those raised outside the ninja views (unknown URL, wrong method,
a body over the limit, a failure in another middleware)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import JsonResponse

log = logging.getLogger(__name__)
PREFIX = "/api/"


class ApiErrorsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith(PREFIX):
            return self.get_response(request)
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "Invalid Content-Length header."}, status=400)
        limit = settings.API_MAX_BODY_BYTES
        if declared > limit:  # refused before anything reads the body
            return JsonResponse({"detail": f"Request body of {declared:,} bytes is over the limit of {limit:,} "
                                           "(API_MAX_BODY_BYTES); send smaller batches."}, status=413)
        response = self.get_response(request)
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith("application/json"):
            converted = JsonResponse({"detail": f"{response.reason_phrase}: {request.method} {request.path}"},
                                     status=response.status_code)
            if "Allow" in response:
                converted["Allow"] = response["Allow"]
            return converted
        return response

    def process_exception(self, request, exception):
        if not request.path_info.startswith(PREFIX):
            return None
        log.exception("API error outside a view", extra={"path": request.path})
        return JsonResponse({"detail": "Internal server error; it has been logged."}, status=500)
