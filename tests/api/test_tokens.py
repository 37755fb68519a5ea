"""Tokens: made and revoked by command or admin, only their hash stored; bearer auth and scopes."""

import hashlib

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from api.models import ApiToken
from api.services import api_token_authenticate
from tests.api.conftest import ApiClient, assert_json_error


@pytest.mark.django_db
def test_create_prints_the_token_once_and_stores_only_its_hash(capsys):
    call_command("api_token", "create", "--name", "crm", "--scope", "write")
    out, err = capsys.readouterr()
    secret = out.strip()
    assert secret.startswith("bb_") and len(secret) > 40
    assert "not shown again" in err
    row = ApiToken.objects.get(name="crm")
    assert (row.scope, row.prefix) == ("write", secret[:11])
    assert row.token_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    stored = [str(v) for v in ApiToken.objects.values_list().get()]
    assert not any(secret in v for v in stored)

    call_command("api_token", "list")
    listing = capsys.readouterr().out
    assert "crm" in listing and "write" in listing and "live" in listing and secret not in listing


@pytest.mark.django_db
def test_default_scope_is_read_and_names_are_unique_among_live_tokens(capsys):
    call_command("api_token", "create", "--name", "dash")
    assert ApiToken.objects.get(name="dash").scope == "read"
    with pytest.raises(CommandError, match="live token named 'dash' exists"):
        call_command("api_token", "create", "--name", "dash")
    call_command("api_token", "revoke", "--name", "dash")
    call_command("api_token", "create", "--name", "dash")  # a revoked token frees its name
    assert ApiToken.objects.filter(name="dash").count() == 2
    with pytest.raises(CommandError, match="No live token named 'nope'"):
        call_command("api_token", "revoke", "--name", "nope")


@pytest.mark.django_db
def test_a_revoked_token_is_refused(client, capsys):
    call_command("api_token", "create", "--name", "old")
    secret = capsys.readouterr().out.strip()
    api = ApiClient(client, secret)
    assert api.get("/api/mentions").status_code == 200
    call_command("api_token", "revoke", "--name", "old")
    assert "Revoked 'old'" in capsys.readouterr().out
    assert_json_error(api.get("/api/mentions"), 401, "Invalid or revoked")


def test_admin_lists_tokens_without_an_add_button_and_revokes_them(client_as, make_token):
    make_token("read", name="a")
    make_token("write", name="b")
    admin = client_as("admin")
    admin.user.is_superuser = True
    admin.user.save()
    changelist = reverse("admin:api_apitoken_changelist")
    page = admin.get(changelist)
    assert page.status_code == 200 and b"bb_" in page.content  # the prefix column
    assert reverse("admin:api_apitoken_add").encode() not in page.content
    ids = [str(pk) for pk in ApiToken.objects.values_list("pk", flat=True)]
    response = admin.post(changelist, {"action": "revoke", "_selected_action": ids}, follow=True)
    assert b"Revoked 2 token(s)." in response.content
    assert not ApiToken.objects.filter(revoked_at__isnull=True).exists()


@pytest.mark.parametrize("headers, message", [
    ({}, "Missing API token"),
    ({"Authorization": "Bearer bb_not-a-token"}, "Invalid or revoked"),
    ({"Authorization": "Token abc"}, "Malformed Authorization header"),
    ({"Authorization": "Bearer "}, "Malformed Authorization header"),
])
def test_401_json_without_or_with_a_bad_token(api_as, headers, message):
    api = api_as(None)
    for response in (api.get("/api/mentions", headers=headers), api.post("/api/posts", {"posts": [{"text": "x"}]}, headers=headers),
                     api.post("/api/extract", {"texts": ["x"], "model": "gazetteer"}, headers=headers),
                     api.get("/api/posts/1", headers=headers)):
        assert_json_error(response, 401, message)
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_403_when_a_read_token_writes_and_a_write_token_also_reads(api_as):
    reader = api_as("read")
    assert_json_error(reader.post("/api/posts", {"posts": [{"text": "my SK2 haul"}]}), 403, "needs a write token")
    writer = api_as("write")
    assert writer.post("/api/posts", {"posts": [{"text": "my SK2 haul"}]}).status_code == 200
    assert writer.get("/api/mentions").status_code == 200


@pytest.mark.django_db
def test_last_used_is_recorded_at_most_once_a_minute(make_token, django_assert_num_queries):
    secret = make_token("read", name="poller")
    assert ApiToken.objects.get(name="poller").last_used_at is None
    first = api_token_authenticate(token=secret)
    assert first.last_used_at is not None
    with django_assert_num_queries(1):  # the lookup only: no write within the minute
        again = api_token_authenticate(token=secret)
    assert again.last_used_at == first.last_used_at


@pytest.mark.pg
@pytest.mark.django_db(transaction=True)
def test_tokens_scopes_and_live_name_uniqueness_on_postgresql(api_as, capsys):
    test_default_scope_is_read_and_names_are_unique_among_live_tokens(capsys)
    test_403_when_a_read_token_writes_and_a_write_token_also_reads(api_as)
