"""Pages of model generations (thin: parse → service/selector → render)."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from annotation.models import DatasetVersion
from beautybrain_app.roles import Role, has_role, role_required
from modeling import selectors
from modeling import lifecycle
from modeling.lifecycle import ACTIVE
from modeling.models import ModelGeneration
from modeling.services import generations as svc
from modeling.services import shadow
from modeling.services.flywheel import flywheel_status

VIEW_ROLES = (Role.ADMIN, Role.REVIEWER, Role.ANALYST)


@role_required(*VIEW_ROLES)
def generation_list(request):
    generations = list(selectors.generations_list())
    return render(request, "modeling/generation_list.html", {
        "generations": generations,
        "chart": selectors.generations_metrics_chart(sorted(generations, key=lambda g: g.number)),
        "versions": selectors.frozen_dataset_versions(),
        "is_admin": has_role(request.user, Role.ADMIN),
        "flywheel": flywheel_status(),
        "shadow": shadow.shadow_status(),
    })


@role_required(*VIEW_ROLES)
def generation_detail(request, number: int):
    generation = get_object_or_404(ModelGeneration.objects.select_related("dataset_version"), number=number)
    finished = generation.status not in ACTIVE
    columns, rows = selectors.generation_comparison(generation)
    context = {"g": generation, "finished": finished, "percent": round(100 * (generation.progress or 0)),
               "can": {action: lifecycle.allowed(generation, action) for action in lifecycle.ALLOWED},
               "loss_chart": selectors.generation_loss_chart(generation), "columns": columns, "rows": rows,
               "is_admin": has_role(request.user, Role.ADMIN)}
    if request.htmx:
        response = render(request, "modeling/generation_detail.html#progress", context)
        return HttpResponseStopPolling(response.content) if finished else response
    return render(request, "modeling/generation_detail.html", context)


@role_required(Role.ADMIN)
@require_POST
def generation_train_next(request):
    version = get_object_or_404(DatasetVersion, number=request.POST.get("dataset") or 0)
    epochs = request.POST.get("epochs") or None
    try:
        generation = svc.generation_create(dataset_version=version, base_model=request.POST.get("backbone", "").strip(),
                                           epochs=float(epochs) if epochs else None, user=request.user)
    except (svc.GenerationError, ValueError) as exc:
        messages.error(request, str(exc))
        return redirect("generation_list")
    messages.success(request, f"gen-{generation.number} queued on the gpu queue.")
    return redirect("generation_detail", number=generation.number)


@role_required(Role.ADMIN)
@require_POST
def generation_action(request, number: int, action: str):
    generation = get_object_or_404(ModelGeneration, number=number)
    try:
        if action == "promote":
            svc.generation_promote(generation=generation, user=request.user, force=bool(request.POST.get("force")))
        elif action == "retire":
            svc.generation_retire(generation=generation, user=request.user)
        elif action == "cancel":
            svc.generation_cancel(generation=generation)
        elif action == "resume":
            svc.generation_resume(generation=generation)
        elif action == "shadow":
            shadow.shadow_start(candidate=generation)
        elif action == "unshadow":
            shadow.shadow_stop()
        else:
            messages.error(request, f"Unknown action {action!r}.")
            return redirect("generation_detail", number=number)
    except (svc.GenerationError, shadow.ShadowError) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"gen-{number}: {action} done.")
    return redirect("generation_detail", number=number)
