"""The reports page from materialised aggregates gives the figures one pass over the mentions gives."""

import itertools
import random

import pytest
from django.urls import reverse

from annotation.models import Repost
from beautybrain_app.roles import Role
from kb.models import Brand
from reports.cube import cube_page_data, cube_refresh
from reports.filters import report_filters_parse
from reports.models import CubeState
from reports.page import reports_page_data
from tests.reports.test_reports import World, at

DAYS = [f"2026-{m:02d}-{d:02d}" for m in (1, 2, 3) for d in (1, 4, 9, 15, 22, 28)]


@pytest.fixture
def mixed(db):
    """Two generations, gold overriding predictions (also with "no brands"), undated posts, unlinked
    brands, a brand named under two categories in one post, reposts on other platforms and dates."""
    w = World()
    rng = random.Random(5)
    brands = [w.skii, w.lamer, w.fenty]
    brands += [Brand.objects.create(canonical_name=f"Brand {i}", slug=f"brand-{i}",
                                    category=w.skincare if i % 2 else w.makeup) for i in range(5)]
    categories = [w.skincare, w.makeup]
    unlinked = ["Glowlab", "Dewy Co", "Petal Rx"]

    def mentions():
        out = []
        for _ in range(rng.choice([1, 1, 2, 3, 4])):
            category = rng.choice(categories)
            if rng.random() < 0.2:
                name = rng.choice(unlinked)  # one spelling: the cube shows a brand's first spelling overall,
                out.append((name, category, name))  # the pass the first in what the filters keep
            else:
                brand = rng.choice(brands)
                out.append((brand, category, brand.canonical_name.lower()))
        return out

    posts = []
    for i in range(90):
        day = rng.choice(DAYS) if rng.random() > 0.1 else None
        post = w.post(f"post {i}", rng.choice(["tiktok", "instagram", "twitter"]), day)
        posts.append(post)
        if rng.random() < 0.3:
            w.gold(post, *([] if rng.random() < 0.15 else mentions()))
        for version in ("gen-1", "gen-2"):
            if rng.random() < 0.8:
                w.predict(post, version, *[(b if isinstance(b, Brand) else None, c.slug, t, 0.8)
                                           for b, c, t in mentions()])
    for post in rng.sample(posts, 12):
        day = rng.choice(DAYS + [None])
        Repost.objects.create(post=post, platform=rng.choice(["tiktok", "youtube"]), external_id=f"r-{post.pk}",
                              posted_at=at(day) if day else None)
    return w


FILTER_GRID = list(itertools.product(
    ["auto", "gold", "gen-1", "gen-2"], ["", "tiktok", "youtube"],
    # Dates that cut buckets (the cube reads its day rows) and dates on whole weeks or months (its week or
    # month rows, for that bucket).
    [{}, {"date_from": "2026-01-09", "date_to": "2026-03-15"}, {"date_from": "2026-02-01"},
     {"date_from": "2026-01-05", "date_to": "2026-02-22"}],
    ["", "skincare"], ["", "SK-II"], ["day", "week", "month"],
))


def _query(source, platform, dates, category, brand, bucket) -> dict:
    query = {"source": source, "bucket": bucket, **dates}
    for name, value in (("platform", platform), ("category", category), ("brand", brand)):
        if value:
            query[name] = value
    return query


def _same(query: dict) -> None:
    filters = report_filters_parse(query)
    expected = reports_page_data(filters)
    got = cube_page_data(filters, CubeState.objects.get(pk=1))
    for data in (expected, got):
        data.pop("computed_at")
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == expected[key], (query, key)


def test_the_cube_gives_the_figures_of_one_pass_over_the_mentions(mixed, settings):
    settings.REPORTS_SOV_MIN_MENTIONS = 2
    cube_refresh()
    for combination in random.Random(11).sample(FILTER_GRID, 90):
        _same(_query(*combination))
    _same({"source": "auto", "bucket": "month"})  # the default view
    assert report_filters_parse({})  # and the data had something to show in it:
    data = cube_page_data(report_filters_parse({}), CubeState.objects.get(pk=1))
    assert data["totals"]["reposts"] > 0 and data["totals"]["undated_posts"] > 0 and data["pairs"]
    assert data["emerging"] and any(not b["linked"] for b in data["top_brands"])


def test_a_change_is_in_the_next_page_view(mixed, client_as):
    client = client_as(Role.ANALYST)
    before = client.get(reverse("reports"), {"source": "gold"}).context["report"]["totals"]["mentions"]
    built = CubeState.objects.get(pk=1).built_at
    mixed.gold(mixed.post("one more", "tiktok", "2026-03-01"), (mixed.fenty, mixed.makeup, "fenty"))
    report = client.get(reverse("reports"), {"source": "gold"}).context["report"]
    assert report["totals"]["mentions"] == before + 1 and not report["stale"]
    assert CubeState.objects.get(pk=1).built_at > built


def test_a_large_database_shows_the_last_figures_and_says_so_until_the_task_refreshes(mixed, client_as, settings):
    from reports.tasks import cube_refresh_task

    client = client_as(Role.ANALYST)
    before = client.get(reverse("reports"), {"source": "gold"}).context["report"]["totals"]["mentions"]
    settings.REPORTS_CUBE_INLINE_ROWS = 0  # every database is "large": the page no longer refreshes inline
    mixed.gold(mixed.post("one more", "tiktok", "2026-03-01"), (mixed.fenty, mixed.makeup, "fenty"))
    response = client.get(reverse("reports"), {"source": "gold"})
    assert response.context["report"]["totals"]["mentions"] == before and response.context["report"]["stale"]
    assert "The data changed since these figures were computed" in response.content.decode()
    result = cube_refresh_task()
    assert result["cells"] > 0
    report = client.get(reverse("reports"), {"source": "gold"}).context["report"]
    assert report["totals"]["mentions"] == before + 1 and not report["stale"]


def test_a_refresh_with_nothing_changed_does_nothing(mixed):
    first = cube_refresh()
    assert cube_refresh().built_at == first.built_at
    assert cube_refresh(force=True).built_at > first.built_at


@pytest.mark.pg
@pytest.mark.django_db(transaction=True)
def test_the_cube_gives_the_same_figures_on_postgresql(mixed, settings):
    settings.REPORTS_SOV_MIN_MENTIONS = 2
    cube_refresh()
    for combination in random.Random(12).sample(FILTER_GRID, 12):
        _same(_query(*combination))


def test_refresh_reports_command(mixed):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("refresh_reports", stdout=out)
    state = CubeState.objects.get(pk=1)
    assert state.cells > 0 and f"{state.cells} cells" in out.getvalue()
