"""Roles are Django groups. Views declare which roles may use them; superusers may use everything."""

from __future__ import annotations

from enum import StrEnum
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied


class Role(StrEnum):
    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"
    ADMIN = "admin"
    ANALYST = "analyst"


# Django model permissions each group gets in the admin (admins: everything in our apps).
ADMIN_APPS = ("kb", "annotation", "modeling")


def user_roles(user) -> set[str]:
    if not user.is_authenticated:
        return set()
    if user.is_superuser:
        return {r.value for r in Role}
    cached = getattr(user, "_bb_roles", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True)) & {r.value for r in Role}
        user._bb_roles = cached
    return cached


def has_role(user, *roles: Role | str) -> bool:
    return bool(user_roles(user) & {str(r) for r in roles})


def role_required(*roles: Role):
    """Login required, then 403 unless the user has one of `roles`."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapper(request, *args, **kwargs):
            if not has_role(request.user, *roles):
                raise PermissionDenied("Your role does not allow this page.")
            return view(request, *args, **kwargs)

        wrapper.allowed_roles = tuple(str(r) for r in roles)
        return wrapper

    return decorator


def roles_ensure() -> None:
    """Create the groups and give the admin group every permission of our apps (idempotent)."""
    from django.contrib.auth.models import Group, Permission

    for role in Role:
        Group.objects.get_or_create(name=role.value)
    admin = Group.objects.get(name=Role.ADMIN.value)
    admin.permissions.set(Permission.objects.filter(content_type__app_label__in=ADMIN_APPS))
