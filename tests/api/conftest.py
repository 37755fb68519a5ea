from __future__ import annotations

import json

import pytest

from api.services import api_token_create


class ApiClient:
    """The Django test client with a bearer token and JSON bodies."""

    def __init__(self, client, token: str | None):
        self.client = client
        self.token = token

    def _headers(self, headers: dict | None) -> dict:
        out = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**out, **(headers or {})}

    def get(self, path: str, params: dict | None = None, headers: dict | None = None):
        return self.client.get(path, params or {}, headers=self._headers(headers))

    def post(self, path: str, body=None, headers: dict | None = None, raw: bytes | str | None = None):
        data = raw if raw is not None else json.dumps(body)
        return self.client.post(path, data=data, content_type="application/json", headers=self._headers(headers))


@pytest.fixture
def make_token(db):
    counter = {"n": 0}

    def make(scope: str = "read", name: str | None = None) -> str:
        counter["n"] += 1
        return api_token_create(name=name or f"client-{counter['n']}", scope=scope)[1]

    return make


@pytest.fixture
def api_as(client, make_token):
    """api_as("write") -> a client sending a fresh token of that scope; api_as(None) sends none."""

    def make(scope: str | None = "read") -> ApiClient:
        return ApiClient(client, make_token(scope) if scope else None)

    return make


@pytest.fixture
def categories(db):
    from kb.models import Category

    return {slug: Category.objects.get_or_create(slug=slug, defaults={"name": slug.title()})[0]
            for slug in ("skincare", "makeup")}


def assert_json_error(response, status: int, contains: str = "") -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert "detail" in body, body
    if contains:
        assert contains in json.dumps(body), body
    return body
