"""/healthz: is the app up (database and broker), as JSON, cheap enough for a load balancer to poll.
`/healthz?workers=1` also asks the workers of each queue (about 1.5 s). Anyone gets the ok flags; the
details (errors, worker names) go to staff or to a request with `Authorization: Bearer $HEALTHZ_TOKEN`."""

import hmac

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from beautybrain_app.celery import app

QUEUES = ("default", "teacher", "student", "gpu")


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except Exception as exc:  # noqa: BLE001 - any failure is "down"
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def check_broker() -> dict:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return {"ok": True, "transport": app.conf.broker_url.split("://", 1)[0]}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def check_workers(timeout: float = 1.5) -> dict:
    """Which workers answer, and which queues each consumes."""
    try:
        replies = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "queues": {q: [] for q in QUEUES}}
    queues = {q: sorted(w for w, qs in replies.items() if any(x.get("name") == q for x in qs)) for q in QUEUES}
    return {"ok": all(queues.values()), "queues": queues}


def _may_see_details(request) -> bool:
    token = settings.HEALTHZ_TOKEN
    sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if token and sent and hmac.compare_digest(sent, token):
        return True
    return bool(getattr(request, "user", None) and request.user.is_staff)


@never_cache
def healthz(request):
    body = {"database": check_database(), "broker": check_broker()}
    if request.GET.get("workers"):
        body["workers"] = check_workers() if body["broker"]["ok"] else {"ok": False, "queues": {}}
    body["ok"] = all(part["ok"] for part in body.values())
    if not _may_see_details(request):
        body = {name: part if name == "ok" else {"ok": part["ok"]} for name, part in body.items()}
    return JsonResponse(body, status=200 if body["ok"] else 503)
