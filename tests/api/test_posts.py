"""POST /api/posts (the importer's validation and storage, by index) and GET /api/posts/{id}."""

import pytest

from annotation.models import Annotation, ImportBatch, Post, Prediction, Span
from tests.api.conftest import assert_json_error

GOOD = {"id": "tt-1", "platform": "tiktok", "text": "my SK2 essence > la mer tbh",
        "posted_at": "2026-04-01T10:00:00Z", "is_beauty": True,
        "brands": [{"start": 3, "end": 6, "text": "SK2", "brand": "SK-II", "category": "skincare"},
                   {"start": 17, "end": 23, "text": "la mer", "brand": "La Mer", "category": "skincare"}]}


def ingest(api, posts):
    response = api.post("/api/posts", {"posts": posts})
    assert response.status_code == 200, response.content
    return response.json()


def test_good_items_land_and_bad_ones_are_reported_by_index(api_as, categories):
    api = api_as("write")
    body = ingest(api, [
        GOOD,
        {"id": "ig-1", "platform": "instagram", "text": "unlabelled post about lipstick"},
        {"platform": "tiktok"},  # no text
        "not an object",
        {"text": "abc", "brands": [{"start": 0, "end": 9}]},  # offsets past the end
        {"text": "fenty gloss", "brands": [{"start": 0, "end": 5, "category": "perfume-ish"}]},
        {"text": "when?", "posted_at": "yesterday"},
    ])
    assert (body["created"], body["duplicates"], body["gold_created"]) == (2, 0, 1)
    assert [(e["index"], e["message"]) for e in body["errors"]] == [
        (2, "missing or empty 'text'"),
        (3, "each line (item) must be a JSON object"),
        (4, "brands[0]: offsets 0:9 outside the text (length 3)"),
        (6, "posted_at 'yesterday' is not an ISO 8601 date-time"),
        (5, "unknown category 'perfume-ish'"),  # found when storing, after parsing
    ]
    post = Post.objects.get(external_id="tt-1")
    assert (post.platform, post.posted_at.isoformat()) == ("tiktok", "2026-04-01T10:00:00+00:00")
    gold = Annotation.objects.get(post=post, is_gold=True)
    assert [(s.text, s.brand_text, s.category.slug) for s in gold.spans.order_by("start")] == [
        ("SK2", "SK-II", "skincare"), ("la mer", "La Mer", "skincare")]  # no KB here: unlinked, named
    batch = ImportBatch.objects.get(pk=body["batch_id"])
    assert (batch.filename.startswith("api:client-"), batch.status, batch.posts_created, batch.error_count) == (
        True, "done", 2, 5)
    assert set(batch.posts.values_list("external_id", flat=True)) == {"tt-1", "ig-1"}


def test_resending_is_idempotent_by_text_and_by_platform_and_id(api_as, categories):
    api = api_as("write")
    assert ingest(api, [GOOD])["created"] == 1
    again = ingest(api, [GOOD, GOOD])
    assert (again["created"], again["duplicates"], again["gold_created"], again["errors"]) == (0, 2, 0, [])
    # The same (platform, id) with an edited text is the same post: not a second one, and the labels,
    # whose offsets are into the new text, stay off the old one.
    edited = {**GOOD, "text": "my SK2 essence > la mer tbh (edit: typo)"}
    body = ingest(api, [edited, {**edited, "platform": "instagram"}])
    assert (body["created"], body["duplicates"]) == (1, 1)
    assert Post.objects.filter(external_id="tt-1").count() == 2  # tiktok's, and instagram's new one
    assert Post.objects.get(external_id="tt-1", platform="tiktok").text == GOOD["text"]
    assert Span.objects.count() == 4  # two gold posts: the original and instagram's
    # Within one request too.
    body = ingest(api, [{"id": "x-9", "platform": "x", "text": "first"}, {"id": "x-9", "platform": "x", "text": "second"}])
    assert (body["created"], body["duplicates"]) == (1, 1)


def test_new_posts_flow_into_pre_labelling_like_imported_ones(api_as, kb):
    from modeling.services.prelabel import prelabel_run_start

    body = ingest(api_as("write"), [{"id": f"p{i}", "platform": "tiktok", "text": f"day {i}: my SK2 essence again"}
                                    for i in range(3)])
    assert body["created"] == 3
    # What make run, `prelabel --only-unlabelled` and the flywheel's promote step start: they find them.
    run = prelabel_run_start(source="gazetteer", only_unlabelled=True, sync=True)
    assert (run.status, run.ok) == ("done", 3)
    predictions = Prediction.objects.filter(post__import_batch_id=body["batch_id"], source="gazetteer")
    assert predictions.count() == 3
    assert all(p.spans[0]["brand"] == "SK-II" for p in predictions)
    # ...and the work queue now ranks them above posts nobody has pre-labelled (priority 0).
    assert Post.objects.filter(import_batch_id=body["batch_id"], priority__gt=0).count() == 3


@pytest.mark.pg
@pytest.mark.django_db(transaction=True)
def test_a_concurrent_request_storing_the_same_post_first_is_a_duplicate_not_a_500(api_as, monkeypatch):
    import threading

    from django.db import connection

    from annotation.services import importing

    real = importing._posts_by_external_id

    def other_request_commits_first(rows):
        # After this chunk looked for existing posts, before it inserts: another connection commits the post.
        if not getattr(other_request_commits_first, "done", False):
            other_request_commits_first.done = True

            def insert():
                Post.objects.create(text="raced post", content_hash=importing.content_hash("raced post"))
                connection.close()

            thread = threading.Thread(target=insert)
            thread.start()
            thread.join()
        return real(rows)

    monkeypatch.setattr(importing, "_posts_by_external_id", other_request_commits_first)
    body = ingest(api_as("write"), [{"text": "raced post"}, {"text": "another post"}])
    assert (body["created"], body["duplicates"], body["errors"]) == (1, 1, [])
    assert Post.objects.filter(text="raced post").count() == 1


def test_batch_limits_and_bad_bodies_are_refused_whole(api_as):
    api = api_as("write")
    assert_json_error(api.post("/api/posts", {"posts": [{"text": f"t{i}"} for i in range(1001)]}), 422, "1000")
    assert_json_error(api.post("/api/posts", {"posts": []}), 422, "at least 1")
    assert_json_error(api.post("/api/posts", [{"text": "a bare list"}]), 422)
    assert_json_error(api.post("/api/posts", raw="{not json"), 400, "Cannot parse request body")
    assert not Post.objects.exists()


def test_a_thousand_posts_in_one_request(api_as):
    body = ingest(api_as("write"), [{"id": str(i), "platform": "bench", "text": f"post number {i}"} for i in range(1000)])
    assert (body["created"], body["errors"]) == (1000, [])


def test_get_post_with_gold_and_predictions(api_as, categories):
    body = ingest(api_as("write"), [GOOD])
    post = Post.objects.get(external_id="tt-1")
    Prediction.objects.create(post=post, source="gazetteer", model_version="gazetteer-v2", is_beauty=True,
                              spans=[{"start": 3, "end": 6, "text": "SK2", "brand": "SK-II", "category": "skincare"}])
    response = api_as("read").get(f"/api/posts/{post.pk}")
    assert response.status_code == 200, response.content
    got = response.json()
    assert (got["post_id"], got["id"], got["platform"], got["text"], got["import_batch_id"]) == (
        post.pk, "tt-1", "tiktok", GOOD["text"], body["batch_id"])
    assert got["posted_at"].startswith("2026-04-01T10:00:00")
    assert got["gold"]["is_beauty"] is True
    assert [(b["text"], b["brand"], b["category"], b["brand_id"]) for b in got["gold"]["brands"]] == [
        ("SK2", "SK-II", "skincare", None), ("la mer", "La Mer", "skincare", None)]
    assert [(p["source"], p["model_version"], p["status"], p["brands"][0]["text"]) for p in got["predictions"]] == [
        ("gazetteer", "gazetteer-v2", "ok", "SK2")]


def test_get_post_unlabelled_and_missing(api_as, django_assert_max_num_queries):
    api = api_as("read")
    post = Post.objects.create(text="plain", content_hash="h" * 64)
    with django_assert_max_num_queries(5):  # token, post, gold (+ its spans), predictions
        got = api.get(f"/api/posts/{post.pk}").json()
    assert (got["gold"], got["predictions"]) == (None, [])
    assert_json_error(api.get(f"/api/posts/{post.pk + 1000}"), 404, f"No post with post_id {post.pk + 1000}")
    assert_json_error(api.get("/api/posts/abc"), 422)


@pytest.mark.pg
@pytest.mark.django_db(transaction=True)
def test_ingest_idempotency_and_errors_on_postgresql(api_as, categories):
    for check in (test_good_items_land_and_bad_ones_are_reported_by_index,
                  test_resending_is_idempotent_by_text_and_by_platform_and_id, test_get_post_with_gold_and_predictions):
        Post.objects.all().delete()  # each check starts from no posts, as in its own test
        check(api_as, categories)
