import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_failed_logins_are_throttled(client, make_user):
    make_user("annotator", username="ann", password="right-password-1")
    for _ in range(5):
        assert client.post("/accounts/login/", {"username": "ann", "password": "wrong"}).status_code == 200
    blocked = client.post("/accounts/login/", {"username": "ann", "password": "right-password-1"})
    assert blocked.status_code == 429
    assert "Too many failed attempts" in blocked.content.decode()
    other = client.post("/accounts/login/", {"username": "someone-else", "password": "x"})
    assert other.status_code == 200  # throttling is per user and address, not global


@pytest.mark.django_db
def test_login_then_logout(client, make_user):
    make_user("annotator", username="ann2", password="right-password-1")
    response = client.post("/accounts/login/", {"username": "ann2", "password": "right-password-1"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_healthz_reports_parts_and_fails_without_workers(client):
    with override_settings(HEALTHZ_TOKEN="monitor-token"):
        response = client.get("/healthz?workers=1", HTTP_AUTHORIZATION="Bearer monitor-token")
    body = response.json()
    assert body["database"]["ok"] is True and body["broker"]["ok"] is True
    assert set(body["workers"]["queues"]) == {"default", "teacher", "student", "gpu"}
    # No worker runs in this test: the endpoint must say so, and not answer 200.
    assert body["workers"]["ok"] is False and response.status_code == 503


@pytest.mark.django_db
def test_public_healthz_is_cheap_and_tells_only_ok(client):
    started = time.monotonic()
    response = client.get("/healthz")
    assert time.monotonic() - started < 0.5  # no worker round trip unless asked for
    assert response.status_code == 200 and response.json() == {"database": {"ok": True}, "broker": {"ok": True},
                                                                "ok": True}
    with override_settings(HEALTHZ_TOKEN="monitor-token"):
        asked = client.get("/healthz?workers=1", HTTP_AUTHORIZATION="Bearer wrong").json()
    assert asked["workers"] == {"ok": False}  # the flag, not which workers or queues exist


@pytest.mark.django_db(transaction=True)
def test_healthz_is_200_with_a_worker_on_every_queue(admin_client, celery_worker_process):
    response = admin_client.get("/healthz?workers=1")
    assert response.status_code == 200, response.content
    assert all(response.json()["workers"]["queues"].values())


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        **os.environ, "DEBUG": "0", "SECRET_KEY": "x" * 20 + "-prod-like-secret-for-the-check-" + "y" * 20,
        "ALLOWED_HOSTS": "beautybrain.example.com", "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/9", "BEAUTYBRAIN_VAR_DIR": str(tmp_path),
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by the browser tests for their own process only
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = {**os.environ, "DEBUG": "0", "SECRET_KEY": "", "BEAUTYBRAIN_VAR_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_logs_are_one_json_object_per_line():
    import logging

    from beautybrain_app.logging import JsonFormatter

    record = logging.makeLogRecord({"name": "x", "msg": "hello %s", "args": ("world",), "levelname": "INFO"})
    record.batch = 7
    line = JsonFormatter().format(record)
    assert json.loads(line) | {"ts": None} == {"ts": None, "level": "INFO", "logger": "x", "msg": "hello world",
                                                 "batch": 7}


@pytest.mark.parametrize("module", ["beautybrain_app.wsgi", "beautybrain_app.asgi"])
def test_the_production_entry_points_default_to_debug_off(tmp_path, module):
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY")}
    env["BEAUTYBRAIN_VAR_DIR"] = str(tmp_path)
    load = f"import {module}; from django.conf import settings; print('DEBUG', settings.DEBUG)"
    refused = subprocess.run([sys.executable, "-c", load], cwd=ROOT, env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "SECRET_KEY must be set" in refused.stderr
    env["SECRET_KEY"] = "a-secret-for-this-test-only-" + "z" * 30
    served = subprocess.run([sys.executable, "-c", load], cwd=ROOT, env=env, capture_output=True, text=True)
    assert served.returncode == 0, served.stderr
    assert served.stdout.strip().endswith("DEBUG False")
