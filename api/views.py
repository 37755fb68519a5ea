"""The JSON API (django-ninja). Thin: parse and authorise, call one service or selector, return."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from ninja import NinjaAPI, Query
from ninja.errors import AuthenticationError, HttpError, Throttled

from reports.filters import ReportFilterError, report_filters_parse
from annotation.services.importing import import_objects
from api import schemas
from api.auth import TokenAuth, TokenRateThrottle
from api.extraction import ModelUnavailable, ModelUnknown, extract_texts
from api.models import ApiToken
from api.selectors import CursorError, mentions_page, post_detail

log = logging.getLogger(__name__)

read = TokenAuth(ApiToken.Scope.READ)
write = TokenAuth(ApiToken.Scope.WRITE)
ERRORS = {401: schemas.Error, 403: schemas.Error, 413: schemas.Error, 422: schemas.Error, 429: schemas.Error}

api = NinjaAPI(
    title="BeautyBrain API",
    version="1",
    description=("Ingest posts, extract brands, read mentions. Every request needs `Authorization: Bearer <token>` "
                 "(`python manage.py api_token create --name NAME [--scope write]`). Errors are JSON "
                 "`{\"detail\": ...}`."),
    urls_namespace="api",
    throttle=[TokenRateThrottle()],
)


@api.exception_handler(AuthenticationError)
def _unauthorized(request: HttpRequest, exc: AuthenticationError):
    response = api.create_response(request, {"detail": exc.message}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


@api.exception_handler(Throttled)
def _throttled(request: HttpRequest, exc: Throttled):
    wait = f"; retry in {exc.wait:.0f} s" if exc.wait is not None else ""
    return api.create_response(
        request, {"detail": f"Rate limit of this token ({settings.API_RATE_LIMIT}) reached{wait}."}, status=429)


@api.exception_handler(RequestDataTooBig)
def _too_big(request: HttpRequest, exc: RequestDataTooBig):
    return api.create_response(request, {"detail": "Request body too large; send smaller batches."}, status=413)


@api.exception_handler(Exception)
def _server_error(request: HttpRequest, exc: Exception):
    log.exception("API error", extra={"path": request.path})
    return api.create_response(request, {"detail": "Internal server error; it has been logged."}, status=500)


@api.post("/posts", auth=write, response={200: schemas.PostsOut, **ERRORS}, tags=["posts"],
          summary="Ingest up to 1000 posts")
def posts_ingest(request: HttpRequest, body: schemas.PostsIn):
    """Idempotent by content hash and by (platform, id): re-sending a batch creates nothing new. Bad items are
    reported with their index; the others land. New posts join the import batches that pre-labelling reads
    (`prelabel --only-unlabelled`, the flywheel, the admin's pre-label actions)."""
    token: ApiToken = request.auth
    batch = import_objects(objects=body.posts, label=f"api:{token.name}", match_external_id=True)
    return {"created": batch.posts_created, "duplicates": batch.posts_duplicate, "reposts": batch.reposts_created, "gold_created": batch.gold_created,
            "errors": [{"index": e["line"], "message": e["error"]} for e in batch.errors], "batch_id": batch.pk}


@api.get("/posts/{post_id}", auth=read, response={200: schemas.PostOut, 404: schemas.Error, **ERRORS},
         tags=["posts"], summary="One post, its gold labels and predictions")
def post_get(request: HttpRequest, post_id: int):
    post = post_detail(post_id=post_id)
    if post is None:
        raise HttpError(404, f"No post with post_id {post_id}.")
    return post


@api.post("/extract", auth=read, response={200: schemas.ExtractOut, 503: schemas.Error, **ERRORS},
          tags=["extract"], summary="Brands in up to 64 texts")
def extract(request: HttpRequest, body: schemas.ExtractIn):
    try:
        model, rows = extract_texts(texts=body.texts, model=body.model)
    except ModelUnavailable as exc:
        raise HttpError(503, str(exc)) from exc
    except ModelUnknown as exc:
        raise HttpError(422, str(exc)) from exc
    return {"model": model, "results": rows}


@api.get("/mentions", auth=read, response={200: schemas.MentionsOut, **ERRORS}, tags=["mentions"],
         summary="Brand mentions, with the reports' filters, a page at a time")
def mentions(request: HttpRequest, query: Query[schemas.MentionsQuery]):
    try:
        filters = report_filters_parse(query.model_dump(exclude={"limit", "cursor"}))
    except ReportFilterError as exc:
        raise HttpError(422, str(exc)) from exc
    try:
        page = mentions_page(filters=filters, limit=query.limit, cursor=query.cursor)
    except CursorError as exc:
        raise HttpError(422, str(exc)) from exc
    return {"source": filters.source, "model_version": filters.model_version, "results": page.results,
            "next": page.next_cursor}
