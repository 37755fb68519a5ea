"""Find or start the servers the integration tests need; fail loudly when one cannot be had.

`python -m tests.services ensure` is what `make test` runs before the PostgreSQL + Redis pass;
the test fixtures call the same functions.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import time


class ServiceUnavailable(RuntimeError):
    pass


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait(host: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.3)
    return False


def ensure_postgres(host: str = "127.0.0.1", port: int = 5432) -> None:
    if port_open(host, port):
        return
    attempts = []
    if shutil.which("pg_ctlcluster"):
        for version_dir in sorted(glob.glob("/etc/postgresql/*")):
            version = os.path.basename(version_dir)
            attempts.append(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"])
    for cmd in attempts:
        subprocess.run(cmd, capture_output=True, timeout=60)
        if _wait(host, port, 20):
            return
    raise ServiceUnavailable(
        f"PostgreSQL is not answering on {host}:{port} and could not be started "
        f"(tried: {attempts or 'no pg_ctlcluster on PATH'}). Start it, or point PG_URL at one."
    )


def ensure_redis(host: str = "127.0.0.1", port: int = 6379) -> None:
    if port_open(host, port):
        return
    server = shutil.which("redis-server")
    if server:
        subprocess.run(
            [server, "--daemonize", "yes", "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no"],
            capture_output=True, timeout=30,
        )
        if _wait(host, port, 15):
            return
    raise ServiceUnavailable(
        f"Redis is not answering on {host}:{port} and could not be started "
        f"({'redis-server failed' if server else 'no redis-server on PATH'})."
    )


def ensure_database(url: str) -> None:
    """Create the (non-test) database named in a postgres URL if it is missing; pytest makes test_<name>."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def main(argv: list[str]) -> int:
    if argv[1:] != ["ensure"]:
        print("usage: python -m tests.services ensure", file=sys.stderr)
        return 2
    try:
        ensure_postgres()
        ensure_redis()
        ensure_database(os.environ.get("PG_URL", "postgres://postgres@127.0.0.1:5432/beautybrain"))
    except ServiceUnavailable as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print("PostgreSQL and Redis are up.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
