"""Gemini teacher client (no Django: modeling.services.teacher builds its TeacherConfig from settings).

One call = one post. The answer follows the teacher contract of DESIGN.md, enforced by
`response_schema`; whatever comes back is still validated here, because a schema is a request,
not a guarantee (and the local test endpoint can be told to break it).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from kb.rules import CATEGORY_SLUGS

# Per-request INFO lines from the SDK and its HTTP client would drown the worker logs.
for _name_ in ("google_genai", "httpx", "httpx2"):
    logging.getLogger(_name_).setLevel(logging.WARNING)

# Bump whenever PROMPT_TEMPLATE or RESPONSE_SCHEMA changes: cached predictions are keyed by it.
PROMPT_VERSION = "teacher-v1"
CATEGORIES = CATEGORY_SLUGS  # the one list (kb/rules.py); the prompt and the response schema name it
POST_OPEN, POST_CLOSE = "<post>", "</post>"

RESPONSE_SCHEMA = {
    "type": "OBJECT",
    "properties": {
        "is_beauty": {"type": "BOOLEAN"},
        "reasoning": {"type": "STRING"},
        "mentions": {
            "type": "ARRAY",
            "items": {
                "type": "OBJECT",
                "properties": {
                    "text": {"type": "STRING"},
                    "brand": {"type": "STRING"},
                    "category": {"type": "STRING", "enum": list(CATEGORIES)},
                },
                "required": ["text", "brand", "category"],
                "propertyOrdering": ["text", "brand", "category"],
            },
        },
    },
    "required": ["is_beauty", "reasoning", "mentions"],
    "propertyOrdering": ["is_beauty", "reasoning", "mentions"],
}

PROMPT_TEMPLATE = """You label social-media posts for a beauty brand monitor.
Decide is_beauty: true when the post is about beauty or personal care (skin, makeup, hair incl.
hairstyles, nails, fragrance, bath/body, shaving and grooming), false otherwise.
List every beauty/personal-care BRAND mention, once per occurrence, in reading order:
- text: the mention exactly as written in the post (for #OPI or @maccosmetics: the part after # or @);
  a grammatical possessive is not part of it ("Clinique's" -> "Clinique"), a possessive in the name is (Kiehl's).
- brand: the brand's canonical name (official spelling).
- category: the brand's main category, one of {categories}.
Do not list retailers as places to shop, product names without the brand, ingredients, non-beauty brands,
common words used as words, or names that appear only inside a URL. Fashion houses count only when the
post is about their beauty products. reasoning: one or two short sentences.

{post_open}
{text}
{post_close}"""


def build_prompt(text: str) -> str:
    return PROMPT_TEMPLATE.format(categories=", ".join(CATEGORIES), post_open=POST_OPEN, post_close=POST_CLOSE, text=text)


# google-genai sends through httpx2 (its own fork) in the releases we pin, httpx in older ones: a refused
# connection or a dropped one is an error reply for this post, never an exception that ends the run.
NETWORK_ERRORS = (httpx2.HTTPError, httpx.HTTPError, OSError)


class TeacherUnavailable(RuntimeError):
    """Neither an API key nor a local endpoint is configured."""


@dataclass
class TeacherReply:
    """One call's outcome. status: ok | invalid | refused | error (error = transient, worth retrying)."""

    status: str
    reason: str = ""
    answer: dict | None = None
    raw: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    attempts: int = 1
    model_version: str = ""
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TeacherConfig:
    api_key: str
    model: str
    base_url: str = ""
    max_attempts: int = 5
    timeout_s: float = 60.0
    initial_delay_s: float = 1.0
    max_delay_s: float = 30.0
    price_in_per_m: float = 0.30
    price_out_per_m: float = 2.50

    def cost(self, tokens_in: int, tokens_out: int) -> Decimal:
        usd = tokens_in * self.price_in_per_m / 1e6 + tokens_out * self.price_out_per_m / 1e6
        return Decimal(f"{usd:.8f}")


class TeacherClient:
    """Thread-safe: one instance per process serves every worker thread."""

    def __init__(self, config: TeacherConfig):
        self.config = config
        self._local = threading.local()
        retry = types.HttpRetryOptions(
            attempts=max(1, config.max_attempts),
            initial_delay=config.initial_delay_s,
            max_delay=config.max_delay_s,
            http_status_codes=[408, 429, 500, 502, 503, 504],
        )
        self.client = genai.Client(
            api_key=config.api_key,
            http_options=types.HttpOptions(
                base_url=config.base_url or None,
                timeout=int(config.timeout_s * 1000),
                retry_options=retry,
                # Counts the HTTP requests of one call (the SDK retries inside generate_content).
                client_args={"event_hooks": {"request": [self._count_request]}},
            ),
        )

    def _count_request(self, request: httpx.Request) -> None:
        self._local.requests = getattr(self._local, "requests", 0) + 1

    def label(self, text: str) -> TeacherReply:
        self._local.requests = 0
        started = time.perf_counter()
        try:
            response = self.client.models.generate_content(
                model=self.config.model,
                contents=build_prompt(text),
                config=types.GenerateContentConfig(
                    response_mime_type="application/json",
                    response_schema=RESPONSE_SCHEMA,
                    temperature=0.0,
                ),
            )
        except genai_errors.APIError as exc:
            return TeacherReply(
                status="error", reason=f"HTTP {exc.code}: {exc.message or exc.status}"[:500], raw=str(exc)[:4000],
                latency_ms=_ms(started), attempts=self._local.requests, model_version=self.config.model,
            )
        except NETWORK_ERRORS as exc:
            return TeacherReply(
                status="error", reason=f"{type(exc).__name__}: {exc}"[:500], latency_ms=_ms(started),
                attempts=self._local.requests, model_version=self.config.model,
            )
        reply = interpret(response)
        reply.latency_ms = _ms(started)
        reply.attempts = max(1, self._local.requests)
        reply.model_version = getattr(response, "model_version", None) or self.config.model
        return reply


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


_REFUSAL_REASONS = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "LANGUAGE", "OTHER"}


def interpret(response: types.GenerateContentResponse) -> TeacherReply:
    """Classify a response: refused (blocked/safety), invalid (not the contract), or ok with the answer."""
    usage = response.usage_metadata
    tokens_in = (usage.prompt_token_count or 0) if usage else 0
    tokens_out = ((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)) if usage else 0
    base = {"tokens_in": tokens_in, "tokens_out": tokens_out}
    feedback = response.prompt_feedback
    candidates = response.candidates or []
    text = _candidate_text(candidates[0]) if candidates else ""
    # The whole response is kept only when there is no answer text to keep (dumping it costs CPU per call).
    base["raw"] = text or _raw_json(response)
    if feedback is not None and feedback.block_reason:
        return TeacherReply(status="refused", reason=f"prompt blocked: {_name(feedback.block_reason)}", **base)
    if not candidates:
        return TeacherReply(status="refused", reason="no candidate returned", **base)
    finish = _name(candidates[0].finish_reason) if candidates[0].finish_reason else ""
    if finish in _REFUSAL_REASONS and not text:
        return TeacherReply(status="refused", reason=f"finish reason {finish}", **base)
    if not text:
        return TeacherReply(status="refused", reason=f"empty answer (finish reason {finish or 'none'})", **base)
    try:
        answer = json.loads(text)
    except json.JSONDecodeError as exc:
        why = "answer cut at the token limit" if finish == "MAX_TOKENS" else "malformed JSON"
        return TeacherReply(status="invalid", reason=f"{why}: {exc}", **base)
    problem = contract_problem(answer)
    if problem:
        return TeacherReply(status="invalid", reason=problem, **base)
    return TeacherReply(status="ok", answer=answer, **base)


def contract_problem(answer) -> str:
    """Why `answer` breaks the teacher contract, or '' when it keeps it."""
    if not isinstance(answer, dict):
        return "answer is not a JSON object"
    if not isinstance(answer.get("is_beauty"), bool):
        return "is_beauty missing or not a boolean"
    if not isinstance(answer.get("reasoning", ""), str):
        return "reasoning is not a string"
    mentions = answer.get("mentions")
    if not isinstance(mentions, list):
        return "mentions missing or not a list"
    for i, m in enumerate(mentions):
        if not isinstance(m, dict) or not all(isinstance(m.get(k), str) for k in ("text", "brand", "category")):
            return f"mention {i} lacks text/brand/category strings"
        if m["category"] not in CATEGORIES:
            return f"mention {i} ({m['text']!r}) has category {m['category']!r} outside the schema"
        if not m["text"].strip():
            return f"mention {i} has an empty text"
    return ""


def _candidate_text(candidate) -> str:
    content = candidate.content
    if content is None or not content.parts:
        return ""
    return "".join(p.text for p in content.parts if getattr(p, "text", None) and not getattr(p, "thought", False))


def _raw_json(response) -> str:
    try:
        return response.model_dump_json(exclude_none=True)[:20000]
    except Exception:  # noqa: BLE001 - audit copy only; never fail a call over it
        return ""


def _name(value) -> str:
    return getattr(value, "value", None) or str(value)


_client_lock = threading.Lock()
_clients: dict[TeacherConfig, TeacherClient] = {}


def get_client(config: TeacherConfig) -> TeacherClient:
    """One client per configuration per process (connection pooling across calls and threads)."""
    with _client_lock:
        if config not in _clients:
            _clients[config] = TeacherClient(config)
        return _clients[config]
