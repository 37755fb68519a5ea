"""The teacher through the real google-genai SDK against the local endpoint: every outcome stored right."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from annotation.models import Annotation, Post, Prediction
from annotation.services.importing import content_hash
from modeling.models import PrelabelRun
from modeling.services.prelabel import prelabel_run_start
from modeling.teacher.client import PROMPT_VERSION
from tests.modeling.fake_gemini import fake_gemini, small_kb  # noqa: F401 - fixtures


def make_posts(*texts):
    return [Post.objects.create(platform="test", text=t, content_hash=content_hash(t)) for t in texts]


def teacher(post):
    return Prediction.objects.get(post=post, source="teacher")


def run_teacher(**kwargs):
    return prelabel_run_start(source="teacher", sync=True, **kwargs)


@pytest.mark.django_db
def test_ok_answer_is_aligned_linked_priced_and_versioned(small_kb, fake_gemini):
    (post,) = make_posts("my SK2 essence > la mer tbh, and #Olay for the body")
    run = run_teacher()
    pred = teacher(post)
    assert (run.status, run.ok, run.failed) == ("done", 1, 0)
    assert (pred.status, pred.prompt_version, pred.model_version) == ("ok", PROMPT_VERSION, "gemini-2.5-flash")
    assert [(s["start"], s["end"], s["text"], s["brand"]) for s in pred.spans] == [
        (3, 6, "SK2", "SK-II"), (17, 23, "la mer", "La Mer"), (34, 38, "Olay", "Olay")]
    assert pred.spans[0]["brand_id"] is not None
    assert pred.spans[2]["brand_id"] is None  # Olay is not in the demo KB: an unlinked mention, teacher's name kept
    assert pred.is_beauty is True and pred.brand_count == 3 and pred.reasoning
    assert pred.tokens_in > 0 and pred.tokens_out > 0
    expected = Decimal(pred.tokens_in * 0.30 / 1e6 + pred.tokens_out * 2.50 / 1e6).quantize(Decimal("1e-8"))
    assert pred.cost_usd == expected
    assert pred.attempts == 1 and pred.latency_ms > 0


@pytest.mark.django_db
@pytest.mark.parametrize("marker, status, reason", [
    ("[[fake:malformed]]", "invalid", "malformed JSON"),
    ("[[fake:refuse]]", "refused", "SAFETY"),
    ("[[fake:blocked]]", "refused", "prompt blocked"),
    ("[[fake:hallucinate]]", "invalid", "unaligned mention"),
    ("[[fake:badcategory]]", "invalid", "outside the schema"),
    ("[[fake:500]]", "error", "HTTP 500"),
])
def test_failure_modes_are_stored_with_status_reason_and_raw_answer(small_kb, fake_gemini, marker, status, reason):
    (post,) = make_posts(f"OPI top coat {marker}")
    run = run_teacher()
    pred = teacher(post)
    assert pred.status == status
    assert reason in pred.status_reason
    assert pred.spans == [] and pred.is_beauty is None  # never used as a label
    assert (run.ok, run.failed) == (0, 1)
    if status != "error":
        assert pred.raw_response  # kept for audit
    if marker == "[[fake:hallucinate]]":
        assert "Glossonite" in pred.raw_response
    if marker == "[[fake:500]]":
        assert pred.attempts == 3 == fake_gemini.stats()["requests"]  # GEMINI_MAX_ATTEMPTS, all through the SDK


@pytest.mark.django_db
@pytest.mark.parametrize("code", ["503", "429"])
def test_two_transient_failures_then_success_are_recovered_by_the_sdk_retries(small_kb, fake_gemini, code):
    (post,) = make_posts(f"OPI again [[fake:{code}x2]]")
    run_teacher()
    pred = teacher(post)
    assert (pred.status, pred.attempts) == ("ok", 3)
    assert fake_gemini.stats()["by_status"] == {code: 2, "200": 1}


@pytest.mark.django_db
def test_rerun_makes_zero_http_calls_but_errors_are_retried(small_kb, fake_gemini):
    make_posts("OPI one", "la mer two", "nothing three", "always down [[fake:500]]")
    first = run_teacher()
    calls = fake_gemini.stats()["requests"]
    assert (first.total, first.ok, first.failed, calls) == (4, 3, 1, 3 + 3)
    second = run_teacher()
    # Only the error (retryable) is tried again; the three labelled posts cost nothing.
    assert second.total == 1 and fake_gemini.stats()["requests"] == calls + 3
    assert Prediction.objects.filter(source="teacher").count() == 4
    with override_settings():
        fake_gemini.reset()
        Prediction.objects.filter(status="error").update(status="invalid")
        third = run_teacher()
    assert third.total == 0 and third.status == "done" and fake_gemini.stats()["requests"] == 0


@pytest.mark.django_db
def test_budget_stops_calls_and_a_resume_labels_only_the_rest(small_kb, fake_gemini, settings):
    posts = make_posts(*(f"OPI post number {i}" for i in range(6)))
    settings.TEACHER_BUDGET_USD = 0.0002  # about two calls at the fake's token counts
    run = run_teacher()
    labelled = Prediction.objects.filter(source="teacher", status="ok").count()
    assert run.status == PrelabelRun.Status.STOPPED
    assert "budget" in run.message.lower() and "TEACHER_BUDGET_USD" in run.message
    assert 1 <= labelled < 6 and fake_gemini.stats()["requests"] == labelled
    assert Prediction.objects.filter(source="teacher").count() == labelled  # nothing half-done
    settings.TEACHER_BUDGET_USD = 25.0
    resumed = run_teacher()
    assert resumed.status == "done" and resumed.total == 6 - labelled
    assert fake_gemini.stats()["requests"] == 6  # each post paid exactly once
    assert Prediction.objects.filter(source="teacher", status="ok").count() == len(posts)


@pytest.mark.django_db
def test_replay_answers_from_stored_answers_and_errors_for_unknown_posts(small_kb, fake_gemini, tmp_path):
    import json

    (tmp_path / "posts_unlabelled.jsonl").write_text(
        json.dumps({"id": "p1", "text": "Loving my OPI polish"}) + "\n", encoding="utf-8")
    (tmp_path / "teacher_answers.jsonl").write_text(json.dumps(
        {"id": "p1", "is_beauty": True, "reasoning": "OPI is a nail brand.",
         "mentions": [{"text": "OPI", "brand": "OPI", "category": "nails"}]}) + "\n", encoding="utf-8")
    from modeling.teacher.fake_server import load_replay

    fake_gemini.answers_by_text = load_replay(tmp_path / "teacher_answers.jsonl")
    known, unknown = make_posts("Loving my OPI polish", "A post nobody answered")
    run_teacher()
    assert teacher(known).status == "ok" and teacher(known).reasoning == "OPI is a nail brand."
    assert teacher(unknown).status == "error" and "404" in teacher(unknown).status_reason


@pytest.mark.django_db
def test_only_unlabelled_and_limit(small_kb, fake_gemini, make_user):
    a, b, c = make_posts("OPI a", "OPI b", "OPI c")
    Annotation.objects.create(post=a, annotator=make_user(), is_gold=True)
    run = run_teacher(only_unlabelled=True, limit=1)
    assert run.total == 1 and Prediction.objects.get(source="teacher").post == b


@pytest.mark.django_db
def test_prelabel_command_sync_prints_the_outcome(small_kb, fake_gemini, capsys):
    make_posts("OPI cmd", "[[fake:refuse]] cmd")
    call_command("prelabel", "--source", "teacher", "--sync")
    out = capsys.readouterr().out
    assert "2/2 handled, 1 ok, 1 failed" in out


@pytest.mark.django_db
def test_teacher_without_key_or_endpoint_is_a_clear_error(settings):
    settings.GEMINI_API_KEY = ""
    settings.GEMINI_BASE_URL = ""
    with pytest.raises(CommandError, match="GEMINI_API_KEY"):
        call_command("prelabel", "--source", "teacher", "--sync")
    assert not PrelabelRun.objects.exists()


@pytest.mark.django_db
def test_teacher_calls_go_through_the_shared_rate_limit(small_kb, fake_gemini, settings):
    import time
    from pathlib import Path

    settings.GEMINI_RATE_PER_S = 4
    slot = Path(settings.VAR_DIR) / "teacher-rate.slot"
    slot.unlink(missing_ok=True)
    make_posts(*(f"OPI rate {i}" for i in range(5)))
    started = time.time()
    run = run_teacher()
    assert run.ok == 5
    assert time.time() - started >= 0.95  # five calls, four intervals of 1/4 s at least
    assert float(slot.read_text()) - started >= 5 / 4 - 0.05  # the shared slot moved on once per call


@pytest.mark.django_db
def test_a_redelivered_chunk_takes_back_its_own_claims_and_leaves_other_workers_alone(small_kb, fake_gemini):
    """A worker killed mid-call leaves its post claimed. The same message redelivered (same task id) labels
    it at once; a different task skips a fresh claim that is not its own, as before."""
    from modeling.services.prelabel import claim_reason, get_source, prediction_claim, prelabel_chunk, prelabel_run_create

    mine, theirs = make_posts("OPI one", "la mer two")
    run, ids = prelabel_run_create(source="teacher")
    source = get_source("teacher")
    assert prediction_claim(post=mine, source=source, owner="task-1") is not None  # then the worker died
    assert prediction_claim(post=theirs, source=source, owner="task-9") is not None  # a live worker on it
    assert Prediction.objects.get(post=mine).status_reason == claim_reason("task-1")
    counts = prelabel_chunk(run_id=run.pk, post_ids=[mine.pk, theirs.pk], owner="task-1")
    assert counts == {"ok": 1, "failed": 0, "skipped": 1}
    assert Prediction.objects.get(post=mine).status == "ok"
    assert Prediction.objects.get(post=theirs).status == "error"  # still task-9's, not called twice
    assert fake_gemini.stats()["requests"] == 1
