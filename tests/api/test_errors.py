"""Every /api/ error is JSON; rate limit and body limit; the schema and the docs page work offline."""

import re

import pytest
from django.contrib.staticfiles import finders

from api.auth import parse_rate
from tests.api.conftest import assert_json_error


def test_unknown_url_and_wrong_method_are_json(api_as):
    api = api_as("read")
    assert_json_error(api.get("/api/nothing-here"), 404, "Not Found")
    response = api.get("/api/posts")  # POST only
    assert_json_error(response, 405, "Method Not Allowed")
    assert "POST" in response["Allow"]
    assert_json_error(api.client.delete("/api/mentions", headers={"Authorization": f"Bearer {api.token}"}), 405)


def test_a_body_over_the_limit_is_413_before_it_is_read(api_as, settings):
    settings.API_MAX_BODY_BYTES = 1000
    api = api_as("write")
    body = assert_json_error(api.post("/api/posts", {"posts": [{"text": "x" * 2000}]}), 413, "API_MAX_BODY_BYTES")
    assert "1,000" in body["detail"]
    assert api.post("/api/posts", {"posts": [{"text": "small"}]}).status_code == 200


def test_django_body_cap_is_413_too(api_as, settings):
    settings.API_MAX_BODY_BYTES = 10_000_000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    assert_json_error(api_as("write").post("/api/posts", {"posts": [{"text": "x" * 2000}]}), 413, "too large")


def test_an_unexpected_error_is_a_500_json_and_is_logged(api_as, monkeypatch, caplog):
    import api.views

    def boom(**kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(api.views, "post_detail", boom)
    body = assert_json_error(api_as("read").get("/api/posts/1"), 500, "Internal server error")
    assert "on fire" not in body["detail"]  # no internals to the client...
    assert any("database on fire" in (r.exc_text or str(r.exc_info)) for r in caplog.records)  # ...but in the log


def test_rate_limit_per_token_is_429_with_retry_after(api_as, settings):
    settings.API_RATE_LIMIT = "3/min"
    first, second = api_as("read"), api_as("read")
    for _ in range(3):
        assert first.get("/api/mentions").status_code == 200
    response = first.get("/api/mentions")
    body = assert_json_error(response, 429, "Rate limit of this token (3/min)")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert "retry in" in body["detail"]
    assert second.get("/api/mentions").status_code == 200  # per token, not per client
    settings.API_RATE_LIMIT = "0"
    assert first.get("/api/mentions").status_code == 200


@pytest.mark.parametrize("rate, parsed", [("600/min", (600, 60)), ("100/10s", (100, 10)), ("5/hour", (5, 3600)),
                                          ("2 / day", (2, 86400)), ("0", None), ("", None)])
def test_parse_rate(rate, parsed):
    assert parse_rate(rate) == parsed


def test_parse_rate_refuses_nonsense():
    with pytest.raises(ValueError, match="is not like '600/min'"):
        parse_rate("fast")


def test_openapi_schema_lists_every_endpoint_with_bearer_auth(client, db):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert set(schema["paths"]) == {"/api/posts", "/api/posts/{post_id}", "/api/extract", "/api/mentions"}
    assert schema["paths"]["/api/posts"]["post"]["security"]
    assert any(s.get("scheme") == "bearer" for s in schema["components"]["securitySchemes"].values())
    assert "PostsIn" in schema["components"]["schemas"]


def test_docs_page_uses_packaged_assets_not_a_cdn(client, db):
    response = client.get("/api/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn" not in html.lower()
    assets = re.findall(r'(?:src|href)="/static/([^"]+)"', html)
    assert {"ninja/swagger-ui-bundle.js", "ninja/swagger-ui.css"} <= set(assets)
    for asset in assets:  # served by staticfiles (runserver, collectstatic): nothing to fetch from outside
        assert finders.find(asset), asset


@pytest.mark.pg
@pytest.mark.django_db(transaction=True)
def test_rate_limit_on_the_shared_cache(api_as, settings):
    """In the PostgreSQL pass the cache is Redis (REDIS_URL), as with several web processes in production."""
    assert "redis" in settings.CACHES["default"]["BACKEND"].lower()
    test_rate_limit_per_token_is_429_with_retry_after(api_as, settings)
