from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from reports.aggregates import EMERGING_MIN_MENTIONS, EMERGING_PRIOR_POSTS, report_table
from reports.csv_export import csv_chunks
from reports.filters import (
    BUCKETS, DEFAULT_BUCKET, KINDS, SOURCE_DEFAULT, ReportFilterError, generations_reportable, platforms_known,
    promoted_model_version, report_filters_parse,
)
from reports.cube import reports_page_data_cached
from beautybrain_app.roles import Role, role_required
from beautybrain_app.csv_cells import with_bom
from kb.models import Category

KIND_LABELS = {"mentions": "Mentions", "brand_summary": "Brand summary", "co_mentions": "Co-mentions",
               "emerging": "Emerging brands"}


def _form_context(request, errors: dict | None = None) -> dict:
    return {
        "values": {k: request.GET.get(k, "") for k in ("date_from", "date_to", "platform", "category", "brand")}
        | {"source": request.GET.get("source") or SOURCE_DEFAULT, "bucket": request.GET.get("bucket") or DEFAULT_BUCKET},
        "errors": errors or {},
        "platforms": platforms_known(),
        "categories": Category.objects.all(),
        "generations": generations_reportable(),
        "promoted": promoted_model_version(),
        "buckets": BUCKETS,
        "kinds": [(k, KIND_LABELS[k]) for k in KINDS],
        "min_mentions": EMERGING_MIN_MENTIONS,
        "prior_posts": EMERGING_PRIOR_POSTS,
        "cache_minutes": settings.REPORTS_PAGE_CACHE_SECONDS // 60,
    }


@role_required(Role.ANALYST, Role.ADMIN)
@require_GET
def reports(request):
    try:
        filters = report_filters_parse(request.GET)
    except ReportFilterError as exc:
        return render(request, "reports/reports.html", _form_context(request, exc.errors), status=400)
    context = _form_context(request) | {"filters": filters, "report": reports_page_data_cached(filters),
                                         "query": urlencode(filters.as_query())}
    return render(request, "reports/reports.html", context)


@role_required(Role.ANALYST, Role.ADMIN)
@require_GET
def reports_export(request, kind: str):
    if kind not in KINDS:
        return HttpResponse(f"Unknown report {kind!r}; use one of: {', '.join(KINDS)}.\n", status=400,
                            content_type="text/plain; charset=utf-8")
    try:
        filters = report_filters_parse(request.GET)
    except ReportFilterError as exc:
        lines = "".join(f"{field}: {message}\n" for field, message in exc.errors.items())
        return HttpResponse(f"Bad filter value.\n{lines}", status=400, content_type="text/plain; charset=utf-8")
    header, rows = report_table(kind, filters)
    response = StreamingHttpResponse(with_bom(csv_chunks(header, rows)), content_type="text/csv; charset=utf-8")
    span = "-".join(d.strftime("%Y%m%d") for d in (filters.date_from, filters.date_to) if d)
    response["Content-Disposition"] = f'attachment; filename="beautybrain-{kind}{"-" + span if span else ""}.csv"'
    # Stop proxies buffering the whole file before the first byte reaches the analyst.
    response["X-Accel-Buffering"] = "no"
    return response
