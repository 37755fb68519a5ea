"""Cascade: the routing never exceeds its share, P(error) is calibrated, teacher/student disagreements reach
the front of the queue, and `prelabel --source cascade` / `predict --model cascade` run end to end."""

from __future__ import annotations

import json
import math
import random

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from annotation.models import Post, Prediction
from annotation.services.datasets import dataset_freeze_now
from annotation.services.queue import disagreement_score, queue_next
from modeling import cascade
from modeling.services import generations as svc
from modeling.services.cascade import cascade_calibrate, cascade_prelabel

from ..annotation.dataset_factories import gold, text_in_split
from .fake_gemini import fake_gemini  # noqa: F401 - fixture
from .student_factories import build_tiny_qwen2
from .test_generations import SOCIAL, TINY


@pytest.mark.parametrize("n", [0, 1, 7, 10, 99, 250])
@pytest.mark.parametrize("share", [0.0, 0.05, 0.1, 0.2, 0.5, 1.0])
def test_route_never_exceeds_share_or_budget(n, share):
    rng = random.Random(n)
    p = [rng.random() for _ in range(n)]
    chosen = cascade.route(p, share)
    assert len(chosen) <= share * n and len(chosen) == int(share * n + 1e-9)
    assert all(p[i] >= max((p[j] for j in range(n) if j not in chosen), default=0) for i in chosen)
    assert len(cascade.route(p, share, budget_posts=3)) <= 3


def test_calibrator_learns_p_error_and_is_calibrated():
    rng = random.Random(0)
    X, errors = [], []
    for _ in range(2000):
        unsure = rng.random()
        X.append([unsure, unsure / 2, unsure, rng.randint(0, 2), 1 - unsure, 0.0, rng.random() / 2, 3.0])
        errors.append(rng.random() < 1 / (1 + math.exp(-6 * (unsure - 0.5))))  # P(error) rises with the doubt
    cal = cascade.Calibrator().fit(X[:1000], errors[:1000])
    p = cal.p_error(X[1000:])
    figures = cascade.calibration_figures(p, errors[1000:])
    assert figures["ece"] < 0.05 and figures["brier"] < 0.2
    assert cal.p_error([[0.9, 0.45, 0.9, 1, 0.1, 0, 0.2, 3]])[0] > 0.7 > 0.2 > cal.p_error(
        [[0.05, 0.02, 0.05, 1, 0.95, 0, 0.2, 3]])[0]
    # Round trip: the artifact stores the calibrator as JSON.
    again = cascade.Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert again.p_error(X[:5]) == cal.p_error(X[:5])


def test_dial_teacher_everywhere_equals_teacher_and_gap_closed():
    gold_rows = [{"text": "x", "brands": [{"start": 0, "end": 1}]} for _ in range(10)]
    student = [{"brands": []} if i < 4 else {"brands": [{"start": 0, "end": 1}]} for i in range(10)]
    teacher = [{"brands": [{"start": 0, "end": 1}]} for _ in range(10)]
    p_error = [0.9 if i < 4 else 0.1 for i in range(10)]  # the calibrator knows which ones are wrong
    rows = cascade.dial(gold_rows, student, teacher, p_error, student_cost_per_1k=0.01, teacher_cost_per_1k=1.0)
    by = {r["share"]: r for r in rows}
    assert by[1.0]["span_f1"] == 1.0 and by[0.0]["span_f1"] < 1.0 and by[0.2]["teacher_calls"] == 2
    assert by[0.5]["span_f1"] == 1.0 and cascade.gap_closed(rows, 0.5) == 1.0
    assert by[0.2]["cost_per_1k_usd"] == pytest.approx(0.01 + 0.2 * 1.0)


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory):
    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2-cascade"))


@pytest.mark.django_db
def test_cascade_prelabel_share_queue_and_predict(kb, tiny_backbone, settings, tmp_path, fake_gemini):  # noqa: F811
    settings.MODELS_DIR = tmp_path / "models"
    settings.TORCH_THREADS = 1
    for split in ("train", "train", "val", "val", "test"):
        for template, mentions in SOCIAL:
            gold(text_in_split(split, template), mentions, is_beauty=bool(mentions))
    version = dataset_freeze_now()
    g = svc.generation_create(dataset_version=version, base_model=tiny_backbone, epochs=2, config=TINY, enqueue=False)
    assert svc.generation_train(generation_id=g.pk) == "ready"
    g.refresh_from_db()
    figures = cascade_calibrate(generation=g)
    assert [r["share"] for r in figures["dial"]] == list(cascade.SHARES) and figures["val_posts"] == 10
    g.refresh_from_db()
    assert g.metrics["cascade"]["dial"][3]["teacher_calls"] == 2  # 20% of 10 val posts
    svc.generation_promote(generation=g)

    # Olay: the teacher knows it, the KB does not, and the student never saw it: they disagree.
    texts = [f"going to the park today {i}" if i % 4 == 0 else f"my olay regenerist cream {i} and sk2" for i in range(20)]
    posts = [Post.objects.create(text=t, content_hash=f"c{i}", external_id=f"c{i}", platform="tiktok")
             for i, t in enumerate(texts)]
    out = cascade_prelabel(share=0.5, posts=posts, sync=True)
    teacher = Prediction.objects.filter(source="teacher", post__in=posts)
    assert out["posts"] == 20 and len(out["routed"]) == 10 == teacher.count() == fake_gemini.stats()["requests"]
    assert Prediction.objects.filter(source="student", post__in=posts).count() == 20
    # Disagreement first: every routed post where teacher and student differ outranks every post that was not.
    by_post = {p.post_id: p for p in Prediction.objects.filter(post__in=posts, source="student")}
    disagree = [t.post_id for t in teacher if disagreement_score([t, by_post[t.post_id]]) > 0.005]
    priorities = dict(Post.objects.filter(pk__in=[p.pk for p in posts]).values_list("pk", "priority"))
    others = [priorities[p.pk] for p in posts if p.pk not in out["routed"]]
    assert disagree, "the tiny student should disagree with the teacher on some routed post"
    assert min(priorities[pk] for pk in disagree) > max(others)
    annotator = get_user_model().objects.create(username="ann")
    assert queue_next(user=annotator).pk in disagree

    # A second cascade over the same posts pays for nothing new.
    calls = fake_gemini.stats()["requests"]
    cascade_prelabel(share=0.5, posts=posts, sync=True)
    assert fake_gemini.stats()["requests"] == calls

    data, result = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    data.write_text("".join(json.dumps({"id": str(i), "text": t + " x"}) + "\n" for i, t in enumerate(texts)))
    call_command("predict", "--model", "cascade", "--teacher-share", "0.1", "--data", str(data), "--out", str(result))
    rows = [json.loads(line) for line in result.read_text().splitlines()]
    assert len(rows) == 20 and sum(r["labelled_by"] == "teacher" for r in rows) == 2
