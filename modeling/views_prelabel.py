"""Pages of pre-labelling runs (thin: read the run, render; writes live in modeling.services.prelabel)."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseStopPolling

from beautybrain_app.roles import Role, role_required
from modeling.models import PrelabelRun
from modeling.services.prelabel import SOURCES, SourceUnavailable, prelabel_run_is_finished, prelabel_run_start


@role_required(Role.ADMIN)
def prelabel_run(request, pk: int):
    run = get_object_or_404(PrelabelRun, pk=pk)
    context = {"run": run, "finished": prelabel_run_is_finished(run),
               "percent": round(100 * run.done / run.total) if run.total else 100}
    if request.htmx:
        response = render(request, "modeling/prelabel_run.html#run-status", context)
        return HttpResponseStopPolling(response.content) if context["finished"] else response
    return render(request, "modeling/prelabel_run.html", context)


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def prelabel_start(request):
    """Start a run over every post lacking a prediction from the chosen source (admins)."""
    if request.method == "POST":
        source = request.POST.get("source", "")
        if source not in SOURCES:
            messages.error(request, "Choose a source.")
        else:
            try:
                run = prelabel_run_start(source=source, only_unlabelled=bool(request.POST.get("only_unlabelled")),
                                         user=request.user)
            except SourceUnavailable as exc:
                messages.error(request, str(exc))
            else:
                return redirect("prelabel_run", pk=run.pk)
    runs = PrelabelRun.objects.select_related("created_by")[:20]
    return render(request, "modeling/prelabel_start.html", {"runs": runs, "sources": SOURCES})
