from __future__ import annotations

from django.db.models import Q
from django.shortcuts import render

from beautybrain_app.roles import Role, role_required
from kb.linking import normalize
from kb.models import BrandAlias

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
