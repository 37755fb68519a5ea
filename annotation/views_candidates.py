"""The KB's candidates page (/kb/candidates/): forms annotators marked and the teacher named that the KB
lacks, for an admin to accept as brands or aliases. It lives here, not in kb/, because the candidates
come from annotations and predictions (kb knows nothing of them)."""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotation.selectors import alias_candidates, brand_candidates
from annotation.services.editor import spans_link_unlinked
from beautybrain_app.roles import Role, role_required
from kb.linking import normalize
from kb.models import Brand, Category
from kb.services import AliasConflict, CandidateError, alias_candidate_resolve, brand_from_candidate


@role_required(Role.ADMIN)
def candidates(request):
    return render(request, "kb/candidates.html", {
        "candidates": brand_candidates(), "categories": Category.objects.all(), "aliases": alias_candidates(),
    })


@role_required(Role.ADMIN)
@require_POST
def alias_candidate(request):
    brand = Brand.objects.filter(pk=request.POST.get("brand_id") if str(request.POST.get("brand_id", "")).isdigit()
                                 else None).first()
    written = request.POST.get("name", "").strip()[:200]
    accept = request.POST.get("action") == "accept"
    if brand is None or not written:
        messages.error(request, "That proposal is no longer valid; reload the page.")
        return redirect("kb_candidates")
    try:
        alias_candidate_resolve(normalized=normalize(written), written=written, brand=brand, accept=accept)
    except AliasConflict as exc:
        messages.error(request, str(exc))
        return redirect("kb_candidates")
    if accept:
        linked = spans_link_unlinked(normalized=normalize(written), brand=brand)
        messages.success(request, f"“{written}” is now an alias of {brand.canonical_name}; {linked} annotated mention"
                                  f"{'s' if linked != 1 else ''} linked.")
    else:
        messages.info(request, f"“{written}” will not be proposed for {brand.canonical_name} again.")
    return redirect("kb_candidates")


@role_required(Role.ADMIN)
@require_POST
def candidate_resolve(request):
    action = request.POST.get("action", "")
    category = Category.objects.filter(pk=request.POST.get("category") or None).first()
    brand = Brand.objects.filter(pk=request.POST.get("brand_id") or None).first()
    try:
        with transaction.atomic():  # the KB gains the form and its mentions are linked, or neither
            brand = brand_from_candidate(written=request.POST.get("name", ""), action=action, category=category,
                                         brand=brand)
            linked = spans_link_unlinked(normalized=request.POST.get("normalized", ""), brand=brand)
    except CandidateError as exc:
        messages.error(request, str(exc))
    else:
        verb = "Created" if action == "create" else "Added the alias to"
        messages.success(request, f"{verb} {brand.canonical_name}; {linked} mention{'s' if linked != 1 else ''} linked.")
    return redirect("kb_candidates")
