"""Every role-guarded view, every role: walked from the URL configuration, so a new view is covered."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from beautybrain_app.roles import Role

ROLES = [r.value for r in Role]


def _guarded_views():
    found = []

    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                if str(p.pattern).startswith("admin/"):
                    continue
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                roles = getattr(p.callback, "allowed_roles", None)
                if roles is None and hasattr(p.callback, "view_class"):
                    roles = getattr(p.callback.view_class, "allowed_roles", None)
                if roles is not None:
                    found.append((prefix + str(p.pattern), tuple(roles)))

    walk(get_resolver().url_patterns)
    return found


def _concrete(route: str) -> str:
    """A URL for a route pattern: ids that do not exist (the role check comes first), words for strings."""
    route = re.sub(r"<(?:int|id):\w+>", "999999", route)
    route = re.sub(r"<(?:str|slug):\w+>", "x", route)
    route = re.sub(r"<\w+>", "x", route)
    return "/" + route.lstrip("^").rstrip("$")


GUARDED = _guarded_views()


def test_the_walk_finds_the_guarded_views():
    routes = {r for r, _ in GUARDED}
    assert "import/" in routes and len(GUARDED) >= 2


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route,allowed", GUARDED, ids=[r for r, _ in GUARDED])
def test_each_role_gets_exactly_its_views(client, make_user, role, route, allowed):
    client.force_login(make_user(role))
    url = _concrete(route)
    response = client.get(url)
    if response.status_code == 405:
        response = client.post(url)
    if role in allowed:
        assert response.status_code != 403, f"{role} refused at {url}"
    else:
        assert response.status_code == 403, f"{role} let into {url} ({response.status_code})"


@pytest.mark.django_db
@pytest.mark.parametrize("route,allowed", GUARDED, ids=[r for r, _ in GUARDED])
def test_anonymous_users_are_sent_to_login(client, route, allowed):
    response = client.get(_concrete(route))
    assert response.status_code in (302, 405)
    if response.status_code == 302:
        assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["annotator", "reviewer", "analyst"])
def test_only_admins_reach_the_django_admin(client, make_user, role):
    client.force_login(make_user(role))
    assert client.get("/admin/").status_code == 302  # to the admin login: not staff
    client.force_login(make_user("admin"))
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/kb/brand/").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("role,expected", [
    ("annotator", "Start annotating"), ("reviewer", "Review"), ("admin", "Import posts"), ("analyst", "Reports"),
])
def test_home_page_shows_each_role_what_to_do_next(client, make_user, role, expected):
    client.force_login(make_user(role))
    page = client.get("/").content.decode()
    assert expected in page
    if role == "analyst":
        assert "Import posts" not in page and "Start annotating" not in page
