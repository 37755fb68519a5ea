from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from beautybrain_app.roles import Role, roles_ensure

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo"


def pytest_configure(config):
    # Real hashing costs ~0.3 s per user on these machines; tests create hundreds of users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def pytest_collection_modifyitems(config, items):
    engine = settings.DATABASES["default"]["ENGINE"]
    for item in items:
        if item.get_closest_marker("pg") and "postgresql" not in engine:
            # Never a silent pass: a PostgreSQL test run on another database fails and says how to run it.
            # (A usefixtures marker added here is too late: the item's fixtures are already resolved.)
            item.fixturenames.insert(0, "_require_postgres")


@pytest.fixture(autouse=True)
def _fresh_kb_index():
    """Each test rolls its brands back, so no test may see a link index built by another."""
    import kb.index
    from django.core.cache import cache

    kb.index._cached = None
    cache.clear()  # the file cache outlives a test's rolled-back database (throttles, index versions)
    yield
    kb.index._cached = None


@pytest.fixture
def _require_postgres():
    pytest.fail("This test needs PostgreSQL: run `make test` (or set DATABASE_URL to a postgres:// URL).")


@pytest.fixture
def make_user(db):
    roles_ensure()
    User = get_user_model()
    counter = {"n": 0}

    def make(*roles: Role | str, username: str | None = None, password: str = "pw-for-tests-1"):
        counter["n"] += 1
        user = User.objects.create_user(username=username or f"user{counter['n']}-{'-'.join(map(str, roles))}",
                                        password=password)
        for role in roles:
            user.groups.add(Group.objects.get(name=str(role)))
        if Role.ADMIN in roles or "admin" in roles:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        return user

    return make


@pytest.fixture
def client_as(client, make_user):
    def login(*roles):
        user = make_user(*roles)
        client.force_login(user)
        client.user = user
        return client

    return login


@pytest.fixture
def kb(db):
    """The real demo KB, with the curated aliases."""
    from annotation.services.demo import KB_FILES
    from kb.services import brands_import_csv

    for name in KB_FILES:
        with (DEMO / name).open(encoding="utf-8") as f:
            brands_import_csv(stream=f)


def _worker_env() -> dict:
    from django.db import connection

    env = dict(os.environ)
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        env["DATABASE_URL"] = (
            f"postgres://{db['USER']}{':' + db['PASSWORD'] if db['PASSWORD'] else ''}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        )
    env["TORCH_THREADS"] = "1"
    return env


def worker_start(concurrency: int = 2, log_name: str = "") -> subprocess.Popen:
    """Start a real Celery worker on the configured broker, consuming every queue, seeing the test DB;
    return once it answers a ping."""
    from beautybrain_app.celery import app

    log = open(settings.VAR_DIR / f"worker-{os.getpid()}{log_name}.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "beautybrain_app", "worker", "-Q", "default,teacher,student,gpu",
         "-c", str(concurrency), "--pool", "prefork", "-l", "INFO", "-n", f"test-{os.getpid()}{log_name}@%h",
         "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=_worker_env(), stdout=log, stderr=subprocess.STDOUT,
    )
    log.close()  # the child holds its own copy
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"Celery worker exited with {proc.returncode}; see {log.name}")
        try:
            if app.control.inspect(timeout=1).ping():
                return proc
        except Exception:  # noqa: BLE001 - broker may still be starting
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"Celery worker did not answer within 60 s; see {log.name}")


def worker_stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def celery_worker_process(transactional_db, request):
    """A real Celery worker process (see worker_start) on a broker emptied for the test."""
    from beautybrain_app.celery import app

    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        for sub in ("queue", "processed", "control"):
            for f in (settings.BROKER_DIR / sub).glob("*"):
                f.unlink()
    else:
        with app.connection_for_write() as conn:
            conn.default_channel.client.flushdb()
    proc = worker_start(getattr(request, "param", 2))
    yield proc
    worker_stop(proc)
