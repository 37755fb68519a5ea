"""Fixtures: the local Gemini-compatible endpoint, in this process or beside a worker."""

from __future__ import annotations

import pytest
from django.test import override_settings

from modeling.teacher.fake_server import FakeGemini, serve


@pytest.fixture
def fake_gemini(settings, monkeypatch):
    """A started fake endpoint; settings (and the env a worker inherits) point the teacher at it."""
    fake = FakeGemini()
    server = serve(fake)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    env = {"GEMINI_BASE_URL": url, "GEMINI_API_KEY": "", "GEMINI_RATE_PER_S": "0", "GEMINI_MAX_ATTEMPTS": "3",
           "GEMINI_RETRY_INITIAL_DELAY_S": "0.01", "TEACHER_BUDGET_USD": "25"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with override_settings(GEMINI_BASE_URL=url, GEMINI_API_KEY="", GEMINI_RATE_PER_S=0, GEMINI_MAX_ATTEMPTS=3,
                           GEMINI_RETRY_INITIAL_DELAY_S=0.01, TEACHER_BUDGET_USD=25.0):
        fake.url = url
        yield fake
    server.shutdown()
    server.server_close()


SMALL_KB_CSV = """canonical_name,aliases,alias_origin,category,category_counts,category_origin,ambiguity_risk,parent_company,country,source
La Mer,LA MER|LaMer,derived|derived,skincare,,source,0,,,test
SK-II,SKII|SK2,derived|derived,skincare,,source,0,,,test
OPI,,,nails,,source,0,,,test
Clinique,,,skincare,,source,0,,,test
"""


@pytest.fixture
def small_kb(db):
    """A few demo brands (the full demo KB takes seconds to load on a busy machine)."""
    import io

    from kb.services import brands_import_csv

    brands_import_csv(stream=io.StringIO(SMALL_KB_CSV))
