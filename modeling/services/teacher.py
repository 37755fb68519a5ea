"""The teacher as the app configures it: settings → TeacherConfig, the per-process client and the shared
rate limiter. modeling/teacher/ itself reads no settings; it takes these objects."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from modeling.teacher.client import TeacherClient, TeacherConfig, TeacherUnavailable, get_client
from modeling.teacher.ratelimit import FileRateLimiter, NoLimit, RedisRateLimiter

_limiters: dict[tuple, object] = {}


def teacher_config() -> TeacherConfig:
    base_url = settings.GEMINI_BASE_URL
    api_key = settings.GEMINI_API_KEY
    if not api_key and not base_url:
        raise TeacherUnavailable(
            "The teacher is not configured: set GEMINI_API_KEY, or GEMINI_BASE_URL to a Gemini-compatible "
            "endpoint (e.g. `python manage.py fake_gemini --port 8765` and GEMINI_BASE_URL=http://127.0.0.1:8765)."
        )
    return TeacherConfig(
        # A local endpoint needs no real key, but the SDK insists on one.
        api_key=api_key or "local-endpoint-key",
        model=settings.GEMINI_MODEL,
        base_url=base_url,
        max_attempts=settings.GEMINI_MAX_ATTEMPTS,
        timeout_s=settings.GEMINI_TIMEOUT_S,
        initial_delay_s=settings.GEMINI_RETRY_INITIAL_DELAY_S,
        price_in_per_m=settings.GEMINI_PRICE_IN_PER_M,
        price_out_per_m=settings.GEMINI_PRICE_OUT_PER_M,
    )


def teacher_client() -> TeacherClient:
    """The configured client, one per configuration per process (connections pooled across calls)."""
    return get_client(teacher_config())


def redis_url() -> str:
    if getattr(settings, "REDIS_URL", ""):
        return settings.REDIS_URL
    broker = getattr(settings, "CELERY_BROKER_URL", "") or ""
    return broker if broker.startswith(("redis://", "rediss://")) else ""


def rate_limiter():
    """The limiter for this configuration (GEMINI_RATE_PER_S <= 0 disables it), one per process."""
    rate = float(settings.GEMINI_RATE_PER_S)
    url = redis_url() if rate > 0 else ""
    key = (rate, url, str(settings.VAR_DIR))
    if key not in _limiters:  # a race here only builds a second, equivalent limiter
        if rate <= 0:
            _limiters[key] = NoLimit()
        elif url:
            _limiters[key] = RedisRateLimiter(url, rate)
        else:
            _limiters[key] = FileRateLimiter(Path(settings.VAR_DIR) / "teacher-rate.slot", rate)
    return _limiters[key]
