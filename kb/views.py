from __future__ import annotations

from django.contrib import messages
from django.db.models import Q
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotation.roles import Role, role_required
from annotation.selectors import alias_candidates, brand_candidates
from annotation.services.editor import CandidateError, brand_candidate_resolve, spans_link_unlinked
from kb.linking import normalize
from kb.models import Brand, BrandAlias, Category
from kb.services import AliasConflict, alias_candidate_resolve

AUTOCOMPLETE_LIMIT = 8


@role_required(Role.ANNOTATOR, Role.REVIEWER, Role.ADMIN)
def brand_autocomplete(request):
    """Brands whose name or an alias starts with (then contains) what was typed, for the editor's
    brand field. Two queries at most."""
    q = request.GET.get("q", "").strip()
    key = normalize(q)
    found: dict[int, dict] = {}
    if key:
        lookups = [Q(normalized__startswith=key)]
        if len(key) >= 3:
            lookups.append(Q(normalized__contains=key) & ~Q(normalized__startswith=key))
        for lookup in lookups:
            aliases = (BrandAlias.objects.filter(lookup, brand__is_active=True).select_related("brand__category")
                       .order_by("normalized")[: AUTOCOMPLETE_LIMIT * 3])
            for alias in aliases:
                entry = found.setdefault(alias.brand_id, {"brand": alias.brand, "via": None})
                if alias.normalized != normalize(alias.brand.canonical_name) and entry["via"] is None:
                    entry["via"] = alias.alias
                if alias.normalized == key:  # an exact alias beats prefixes
                    entry["exact"] = True
            if len(found) >= AUTOCOMPLETE_LIMIT:
                break
    options = sorted(found.values(), key=lambda e: (not e.get("exact"), len(e["brand"].canonical_name)))
    return render(request, "kb/autocomplete.html", {"q": q, "options": options[:AUTOCOMPLETE_LIMIT]})


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
        brand, linked = brand_candidate_resolve(
            normalized=request.POST.get("normalized", ""), written=request.POST.get("name", ""),
            action=action, category=category, brand=brand,
        )
    except CandidateError as exc:
        messages.error(request, str(exc))
    else:
        verb = "Created" if action == "create" else "Added the alias to"
        messages.success(request, f"{verb} {brand.canonical_name}; {linked} mention{'s' if linked != 1 else ''} linked.")
    return redirect("kb_candidates")
