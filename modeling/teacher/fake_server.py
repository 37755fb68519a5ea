"""A local Gemini-compatible endpoint for tests, benchmarks and the demo (stdlib only, no Django).

It speaks the REST call the google-genai SDK makes (`POST /v1beta/models/{model}:generateContent`,
key in `x-goog-api-key`, `usageMetadata` in the answer), so the real SDK runs against it.

Answers:
- replay mode (`--replay teacher_answers.jsonl` + the posts file beside it): the stored answer of the
  post whose text is in the prompt; a post with no stored answer gets HTTP 404 (never an invented answer);
- otherwise a small built-in rule (a handful of well-known brands), enough for tests and the bench.

Scripted failures, by a marker in the post text (so parallel tests never share state):
  [[fake:503x2]] / [[fake:429x1]]  answer 503/429 the first N times this text is asked, then normally;
  [[fake:500]]         always 500;          [[fake:malformed]]   JSON cut in the middle;
  [[fake:refuse]]      finishReason SAFETY; [[fake:blocked]]     promptFeedback.blockReason;
  [[fake:hallucinate]] a mention that is not in the text;  [[fake:badcategory]] a category outside the schema.
Control: GET /_control/stats (request counts), POST /_control/reset, POST /_control/config {"latency_ms": n}.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PATH = re.compile(r"^/(?P<version>v1beta|v1|v1alpha)/models/(?P<model>[^/:]+):generateContent$")
MARKER = re.compile(r"\[\[fake:(?P<what>[a-z]+|\d{3})(?:x(?P<times>\d+))?\]\]")
POST_TEXT = re.compile(r"<post>\n(?P<text>.*)\n</post>", re.DOTALL)

BUILTIN_BRANDS = {
    # folded text -> (canonical, category); enough to give tests and the bench real mentions
    "sk2": ("SK-II", "skincare"), "sk-ii": ("SK-II", "skincare"), "la mer": ("La Mer", "skincare"),
    "opi": ("OPI", "nails"), "cerave": ("CeraVe", "skincare"), "clinique": ("Clinique", "skincare"),
    "maybelline": ("Maybelline", "makeup"), "chanel": ("Chanel", "fragrance"), "olay": ("Olay", "skincare"),
}
_BUILTIN = re.compile(r"(?<![\w])(" + "|".join(re.escape(k) for k in sorted(BUILTIN_BRANDS, key=len, reverse=True)) + r")(?![\w])", re.IGNORECASE)


class FakeGemini:
    def __init__(self, *, answers_by_text: dict[str, dict] | None = None, latency_ms: float = 0.0):
        self.answers_by_text = answers_by_text
        self.latency_ms = latency_ms
        self.lock = threading.Lock()
        self.requests = 0
        self.by_status: dict[str, int] = {}
        self.seen: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0

    # -- answers -------------------------------------------------------------------------------------
    def answer_for(self, text: str) -> dict | None:
        if self.answers_by_text is not None:
            return self.answers_by_text.get(text) or self.answers_by_text.get(" ".join(text.split()))
        mentions = []
        for m in _BUILTIN.finditer(text):
            canonical, category = BUILTIN_BRANDS[m.group(1).lower()]
            mentions.append({"text": m.group(1), "brand": canonical, "category": category})
        return {
            "is_beauty": bool(mentions),
            "reasoning": "Brands named: " + ", ".join(x["brand"] for x in mentions) if mentions else "No brand named.",
            "mentions": mentions,
        }

    def handle(self, model: str, body: dict) -> tuple[int, dict]:
        """(HTTP status, JSON body) for one generateContent request."""
        prompt = "".join(p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", []))
        found = POST_TEXT.search(prompt)
        text = found.group("text") if found else prompt
        with self.lock:
            self.requests += 1
            self.seen[text] = self.seen.get(text, 0) + 1
            nth = self.seen[text]
            latency = self.latency_ms
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if latency:
                time.sleep(latency / 1000)
        finally:
            with self.lock:
                self.in_flight -= 1
        marker = MARKER.search(text)
        what = marker.group("what") if marker else ""
        times = int(marker.group("times") or 0) if marker else 0
        if what in {"503", "429"} and nth <= times:
            return _error(int(what), "UNAVAILABLE" if what == "503" else "RESOURCE_EXHAUSTED", "scripted failure")
        if what == "500":
            return _error(500, "INTERNAL", "scripted failure")
        usage = {"promptTokenCount": max(1, len(prompt) // 4)}
        if what == "blocked":
            return 200, {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage, "modelVersion": model}
        if what == "refuse":
            candidate = {"finishReason": "SAFETY", "index": 0,
                         "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}]}
            return 200, {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}
        answer = self.answer_for(text)
        if answer is None:
            return _error(404, "NOT_FOUND", "no stored teacher answer for this post")
        answer = {k: answer[k] for k in ("is_beauty", "reasoning", "mentions") if k in answer}
        if what == "hallucinate":
            answer = {**answer, "mentions": [*answer["mentions"], {"text": "Glossonite", "brand": "Glossonite", "category": "makeup"}]}
        if what == "badcategory":
            answer = {**answer, "mentions": [{"text": "x", "brand": "x", "category": "jewellery"}]}
        out = json.dumps(answer, ensure_ascii=False)
        if what == "malformed":
            out = out[: max(1, len(out) // 2)]
        usage.update(candidatesTokenCount=max(1, len(out) // 4))
        usage["totalTokenCount"] = usage["promptTokenCount"] + usage["candidatesTokenCount"]
        candidate = {"content": {"parts": [{"text": out}], "role": "model"}, "finishReason": "STOP", "index": 0}
        return 200, {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}

    def stats(self) -> dict:
        with self.lock:
            return {"requests": self.requests, "by_status": dict(self.by_status), "latency_ms": self.latency_ms,
                    "max_in_flight": self.max_in_flight}

    def reset(self) -> None:
        with self.lock:
            self.requests = 0
            self.max_in_flight = 0
            self.by_status.clear()
            self.seen.clear()

    def count_status(self, status: int) -> None:
        with self.lock:
            self.by_status[str(status)] = self.by_status.get(str(status), 0) + 1


def _error(code: int, status: str, message: str) -> tuple[int, dict]:
    return code, {"error": {"code": code, "message": message, "status": status}}


def posts_beside(answers_path: Path) -> Path:
    """teacher_answers.jsonl answers posts_unlabelled.jsonl; teacher_answers_<set>.jsonl answers posts_<set>.jsonl."""
    suffix = answers_path.stem.removeprefix("teacher_answers")
    return answers_path.with_name(f"posts{suffix}.jsonl" if suffix else "posts_unlabelled.jsonl")


def load_replay(answers_paths: Path | list[Path], posts_path: Path | None = None) -> dict[str, dict]:
    """Stored answers keyed by post text: answers carry ids, posts map ids to texts. Several answer files
    can be given (each with its posts file beside it); `posts_path` overrides that for a single file."""
    paths = [answers_paths] if isinstance(answers_paths, Path) else list(answers_paths)
    by_text: dict[str, dict] = {}
    for answers_path in paths:
        by_text |= _load_one(answers_path, posts_path if len(paths) == 1 and posts_path else posts_beside(answers_path))
    return by_text


def _load_one(answers_path: Path, posts_path: Path) -> dict[str, dict]:
    text_by_id = {}
    with posts_path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                text_by_id[row["id"]] = row["text"]
    by_text: dict[str, dict] = {}
    with answers_path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                text = text_by_id.get(row["id"])
                if text is not None:
                    by_text[text] = row
                    by_text.setdefault(" ".join(text.split()), row)
    return by_text


def make_handler(fake: FakeGemini):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: tests and the bench make thousands of calls
            pass

        def _send(self, code: int, payload: dict) -> None:
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            # Counted before the client can read the answer: a caller that checks the stats right after its
            # last response must see that response counted.
            fake.count_status(code)
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            return json.loads(raw or b"{}")

        def do_GET(self):
            if self.path.startswith("/_control/stats"):
                return self._send(200, fake.stats())
            if self.path in ("/", "/healthz"):
                return self._send(200, {"ok": True})
            return self._send(404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})

        def do_POST(self):
            try:
                body = self._body()
            except json.JSONDecodeError:
                return self._send(400, {"error": {"code": 400, "message": "bad JSON", "status": "INVALID_ARGUMENT"}})
            if self.path == "/_control/reset":
                fake.reset()
                return self._send(200, fake.stats())
            if self.path == "/_control/config":
                if "latency_ms" in body:
                    fake.latency_ms = float(body["latency_ms"])
                return self._send(200, fake.stats())
            path = self.path.split("?", 1)[0]
            m = PATH.match(path)
            if not m:
                return self._send(404, {"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}})
            if not (self.headers.get("x-goog-api-key") or "key=" in self.path):
                return self._send(401, {"error": {"code": 401, "message": "API key missing", "status": "UNAUTHENTICATED"}})
            code, payload = fake.handle(m.group("model"), body)
            return self._send(code, payload)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def serve(fake: FakeGemini, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A started server (in a daemon thread); `server.server_address[1]` is the port, `server.shutdown()` stops it."""
    server = _Server((host, port), make_handler(fake))
    threading.Thread(target=server.serve_forever, name="fake-gemini", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    run(**vars(parser.parse_args(argv)))


def add_arguments(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--replay", type=Path, action="append",
                        help="teacher_answers[_SET].jsonl (posts_unlabelled.jsonl / posts_SET.jsonl beside it); repeatable")
    parser.add_argument("--posts", type=Path, help="posts file for --replay, if not beside it")
    parser.add_argument("--latency-ms", type=float, default=0.0)


def run(*, host: str, port: int, replay: list[Path] | None, posts: Path | None, latency_ms: float, out=print) -> None:
    answers = load_replay(replay, posts) if replay else None
    fake = FakeGemini(answers_by_text=answers, latency_ms=latency_ms)
    server = _Server((host, port), make_handler(fake))
    mode = f"replaying {len(answers)} stored answers" if answers is not None else "built-in answers"
    out(f"Fake Gemini on http://{host}:{server.server_address[1]} ({mode}, latency {latency_ms:g} ms)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
