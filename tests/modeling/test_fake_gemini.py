"""The local Gemini-compatible endpoint itself: concurrency, replay through the command, the API key."""

import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from modeling.teacher.client import TeacherClient, TeacherConfig
from modeling.teacher.fake_server import FakeGemini, serve
from tests.conftest import DEMO, ROOT


def client(url, **kwargs):
    return TeacherClient(TeacherConfig(api_key="k", model="gemini-2.5-flash", base_url=url, initial_delay_s=0.01,
                                       max_attempts=2, **kwargs))


def test_serves_concurrent_requests_so_latency_overlaps():
    fake = FakeGemini(latency_ms=300)
    server = serve(fake)
    try:
        teacher = client(f"http://127.0.0.1:{server.server_address[1]}")
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(teacher.label, [f"OPI number {i}" for i in range(8)]))
        elapsed = time.perf_counter() - started
        assert all(r.status == "ok" for r in replies)
        assert elapsed < 8 * 0.3 / 2  # sequential would take 2.4 s
        assert fake.stats()["max_in_flight"] >= 4
    finally:
        server.shutdown()
        server.server_close()


def test_rejects_requests_without_an_api_key():
    server = serve(FakeGemini())
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1beta/models/gemini-2.5-flash:generateContent"
        assert httpx.post(url, json={"contents": []}).status_code == 401
    finally:
        server.shutdown()
        server.server_close()


def test_command_replays_stored_answers_by_post_text():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "manage.py", "fake_gemini", "--port", str(port), "--replay",
                             str(DEMO / "teacher_answers.jsonl")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert "replaying" in proc.stdout.readline()
        first_post = json.loads((DEMO / "posts_unlabelled.jsonl").open(encoding="utf-8").readline())
        stored = {}
        with (DEMO / "teacher_answers.jsonl").open(encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                stored[row["id"]] = row
        teacher = client(f"http://127.0.0.1:{port}")
        reply = teacher.label(first_post["text"])
        assert reply.status == "ok"
        assert reply.answer["reasoning"] == stored[first_post["id"]]["reasoning"]
        unknown = teacher.label("a post that is not in the demo data")
        assert unknown.status == "error" and "404" in unknown.reason  # never an invented answer
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stdout.close()


def test_a_refused_or_dropped_connection_is_an_error_reply_not_an_exception():
    """The SDK raises httpx2's errors (not httpx's): each must become status=error for that post."""
    import threading

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused_port = closed.getsockname()[1]
    closed.close()
    dropper = socket.socket()
    dropper.bind(("127.0.0.1", 0))
    dropper.listen(8)

    def drop_every_connection():
        while True:
            try:
                conn, _ = dropper.accept()
            except OSError:
                return
            conn.recv(1024)
            conn.close()

    threading.Thread(target=drop_every_connection, daemon=True).start()
    try:
        for port, kinds in ((refused_port, ("ConnectError",)), (dropper.getsockname()[1], ("RemoteProtocolError", "ReadError"))):
            reply = client(f"http://127.0.0.1:{port}").label("my SK2 essence")
            assert reply.status == "error" and reply.answer is None
            assert any(kind in reply.reason for kind in kinds), reply.reason
    finally:
        dropper.close()
