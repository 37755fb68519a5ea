"""GET /api/mentions: the reports' mention stream and filters, a page at a time with an opaque cursor."""

import pytest

from modeling.models import ModelGeneration
from tests.reports.test_reports import table, world  # noqa: F401 - `world` is the reports' fixture
from tests.api.conftest import assert_json_error


def all_pages(api, limit: int, **query) -> tuple[list[dict], int]:
    rows, pages, cursor = [], 0, None
    while True:
        response = api.get("/api/mentions", {**query, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.content
        body = response.json()
        assert len(body["results"]) <= limit
        rows += body["results"]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            return rows, pages
        assert len(body["results"]) == limit  # only a full page has a next one


def key(row: dict) -> tuple:
    """A mention of the API or a row of the CSV report."""
    return (row["post_id"], row["brand"], row["source"], row["model_version"])


@pytest.mark.parametrize("limit", [1, 2, 3, 10, 1000])
def test_pages_add_up_to_the_mentions_report(world, api_as, limit):
    expected = [key(r) for r in table("mentions")]
    rows, pages = all_pages(api_as("read"), limit)
    assert [key(r) for r in rows] == expected  # pages may end inside a post (P1 has 3 mentions)
    assert pages == max(1, -(-len(expected) // limit))


def test_fields_of_a_mention(world, api_as):
    body = api_as("read").get("/api/mentions", {"source": "gen-1"}).json()
    assert (body["source"], body["model_version"]) == ("gen-1", "gen-1")
    glowlab = next(r for r in body["results"] if r["brand"] == "Glowlab")
    assert {k: glowlab[k] for k in ("brand_id", "brand_linked", "category", "text", "source", "confidence")} == {
        "brand_id": None, "brand_linked": False, "category": "skincare", "text": "Glowlab", "source": "student",
        "confidence": 0.7}
    assert glowlab["posted_at"].startswith("2026-02-15T12:00:00")


@pytest.mark.parametrize("query, expected", [
    ({"source": "gold"}, 8), ({"source": "gen-1"}, 3), ({"source": "2"}, 1), ({"platform": "instagram"}, 2),
    ({"category": "makeup"}, 1), ({"brand": "sk-ii"}, 5), ({"date_from": "2026-02-01", "date_to": "2026-02-28"}, 4),
    ({"date_to": "2026-01-05"}, 3),
])
def test_the_reports_filters(world, api_as, query, expected):
    rows, _ = all_pages(api_as("read"), 2, **query)
    assert len(rows) == expected == len(table("mentions", **query))


@pytest.mark.parametrize("query, message", [
    ({"platform": "myspace"}, "Unknown platform 'myspace'"),
    ({"date_from": "yesterday"}, "is not a date"),
    ({"source": "gen-77"}, "There is no generation gen-77"),
    ({"brand": "Nobody"}, "No brand named 'Nobody'"),
    ({"limit": 0}, "limit"),
    ({"limit": 1001}, "limit"),
])
def test_bad_filters_are_422(world, api_as, query, message):
    assert_json_error(api_as("read").get("/api/mentions", query), 422, message)


def test_cursors_are_opaque_and_bound_to_their_filters(world, api_as):
    api = api_as("read")
    cursor = api.get("/api/mentions", {"limit": 2, "source": "gold"}).json()["next"]
    assert cursor and "post" not in cursor
    assert api.get("/api/mentions", {"limit": 2, "source": "gold", "cursor": cursor}).status_code == 200
    assert_json_error(api.get("/api/mentions", {"limit": 2, "source": "gold", "cursor": cursor[:-3] + "abc"}), 422,
                      "Invalid cursor")
    assert_json_error(api.get("/api/mentions", {"limit": 2, "source": "gen-1", "cursor": cursor}), 422,
                      "belongs to other filters")
    # "auto" reads the promoted generation: after a promotion its cursors would resume another stream.
    auto = api.get("/api/mentions", {"limit": 2}).json()["next"]
    ModelGeneration.objects.filter(number=1).update(status="retired")
    ModelGeneration.objects.filter(number=2).update(status="promoted")
    assert_json_error(api.get("/api/mentions", {"limit": 2, "cursor": auto}), 422, "another generation was promoted")


def test_a_page_costs_a_fixed_number_of_queries(world, api_as, django_assert_max_num_queries):
    api = api_as("read")
    api.get("/api/mentions")  # the token's last use is written once a minute; not counted below
    for limit in (2, 1000):
        # token, promoted generation, filters' checks, KB names and categories, gold and predicted mentions
        with django_assert_max_num_queries(8):
            assert api.get("/api/mentions", {"limit": limit, "brand": "sk-ii"}).status_code == 200


@pytest.mark.pg
@pytest.mark.django_db(transaction=True)  # autocommit, as in production: the stream opens its own transaction
def test_pages_add_up_on_postgresql(world, api_as):
    api = api_as("read")
    for limit in (1, 3, 1000):
        rows, _ = all_pages(api, limit)
        assert [key(r) for r in rows] == [key(r) for r in table("mentions")]
    rows, _ = all_pages(api, 2, brand="sk-ii", source="auto")
    assert len(rows) == 5
