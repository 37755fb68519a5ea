"""Reports on a small dataset whose every number is worked out by hand in the comments."""

import csv
import io
from datetime import date, datetime
from datetime import timezone as dt_timezone

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation.models import Annotation, DatasetVersion, Post, Prediction, Span
from reports.aggregates import BrandSummary, CoMentions, Emerging, report_table, run_pass
from reports.filters import ReportFilterError, report_filters_parse
from beautybrain_app.roles import Role
from annotation.services.importing import content_hash
from beautybrain_app.csv_cells import cell_safe
from kb.models import Brand, Category
from modeling.models import ModelGeneration


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=12, tzinfo=dt_timezone.utc)


class World:
    def __init__(self):
        self.skincare = Category.objects.get_or_create(slug="skincare", defaults={"name": "Skincare"})[0]
        self.makeup = Category.objects.get_or_create(slug="makeup", defaults={"name": "Makeup"})[0]
        self.skii = Brand.objects.create(canonical_name="SK-II", slug="sk-ii", category=self.skincare)
        self.lamer = Brand.objects.create(canonical_name="La Mer", slug="la-mer", category=self.skincare)
        self.fenty = Brand.objects.create(canonical_name="Fenty Beauty", slug="fenty-beauty", category=self.makeup)
        # No password: hashing one costs more than the rest of the set-up.
        self.annotator = get_user_model().objects.create(username="gold-annotator")
        dataset = DatasetVersion.objects.create(number=901)
        ModelGeneration.objects.create(number=1, base_model="tiny", dataset_version=dataset, status="promoted")
        ModelGeneration.objects.create(number=2, base_model="tiny", dataset_version=dataset, status="ready")

    def post(self, text: str, platform: str, day: str | None) -> Post:
        return Post.objects.create(text=text, platform=platform, posted_at=at(day) if day else None,
                                   content_hash=content_hash(text))

    def gold(self, post: Post, *mentions) -> Annotation:
        annotation = Annotation.objects.create(post=post, annotator=self.annotator, is_gold=True,
                                               status="accepted", no_brands=not mentions)
        for i, (brand, category, text) in enumerate(mentions):
            Span.objects.create(annotation=annotation, start=10 * i, end=10 * i + len(text), text=text,
                                brand=brand if isinstance(brand, Brand) else None,
                                brand_text="" if isinstance(brand, Brand) else (brand or ""), category=category)
        return annotation

    def predict(self, post: Post, version: str, *mentions, status="ok") -> Prediction:
        spans = [{"start": 0, "end": len(text), "text": text, "brand": b.canonical_name if b else None,
                  "brand_id": b.pk if b else None, "category": category, "confidence": conf}
                 for b, category, text, conf in mentions]
        return Prediction.objects.create(post=post, source="student", model_version=version, spans=spans,
                                         status=status)


@pytest.fixture
def world(db):
    w = World()
    sk, mk = w.skincare, w.makeup
    # P1, P2 (January): gold. P3, P4, P5 (February). P6: gold but undated.
    w.gold(w.post("p1 sk2 la mer skii", "tiktok", "2026-01-05"),
           (w.skii, sk, "SK2"), (w.lamer, sk, "la mer"), (w.skii, sk, "SKII"))
    w.gold(w.post("p2 sk-ii", "tiktok", "2026-01-20"), (w.skii, sk, "SK-II"))
    w.gold(w.post("p3 la mer fenty", "instagram", "2026-02-10"), (w.lamer, sk, "La Mer"), (w.fenty, mk, "fenty"))
    # No gold: the promoted generation (gen-1) speaks, with an unlinked brand.
    w.predict(w.post("p4 sk2 glowlab", "tiktok", "2026-02-15"), "gen-1",
              (w.skii, "skincare", "sk2", 0.91), (None, "skincare", "Glowlab", 0.7))
    # Gold saying "no brands" overrides the model's La Mer.
    p5 = w.post("p5 nothing", "tiktok", "2026-02-20")
    w.gold(p5)
    w.predict(p5, "gen-1", (w.lamer, "skincare", "lamer", 0.5))
    w.gold(w.post("p6 skii lamer", "tiktok", None), (w.skii, sk, "skii"), (w.lamer, sk, "lamer"))
    # Never counted by default: an invalid prediction, and a generation that is not promoted.
    w.predict(w.post("p7 skii", "instagram", "2026-02-25"), "gen-1", (w.skii, "skincare", "skii", 0.9),
              status="invalid")
    w.predict(w.post("p8 fenty", "tiktok", "2026-02-26"), "gen-2", (w.fenty, "makeup", "fenty", 0.8))
    return w


def table(kind: str, **query) -> list[dict]:
    header, rows = report_table(kind, report_filters_parse(query))
    return [dict(zip(header, row)) for row in rows]


def download(client, kind: str, **query) -> list[dict]:
    response = client.get(reverse("reports_export", args=[kind]), query)
    assert response.status_code == 200, response.content
    body = b"".join(response.streaming_content).decode("utf-8-sig")  # a BOM first, for Excel
    return list(csv.DictReader(io.StringIO(body)))


# --- numbers -------------------------------------------------------------------------------------

def test_mentions_default_source_is_gold_else_promoted(world):
    rows = table("mentions")
    # P1 3 + P2 1 + P3 2 + P4 2 (gen-1) + P6 2 (undated, still exported); P5's gold "no brands" wins.
    assert [(r["post_id"], r["brand"], r["source"]) for r in rows] == [
        (rows[0]["post_id"], "SK-II", "gold"), (rows[0]["post_id"], "La Mer", "gold"),
        (rows[0]["post_id"], "SK-II", "gold"),
        (rows[3]["post_id"], "SK-II", "gold"),
        (rows[4]["post_id"], "La Mer", "gold"), (rows[4]["post_id"], "Fenty Beauty", "gold"),
        (rows[6]["post_id"], "SK-II", "student"), (rows[6]["post_id"], "Glowlab", "student"),
        (rows[8]["post_id"], "SK-II", "gold"), (rows[8]["post_id"], "La Mer", "gold"),
    ]
    glowlab = rows[7]
    assert (glowlab["brand_linked"], glowlab["model_version"], glowlab["confidence"], glowlab["category"]) == (
        "no", "gen-1", 0.7, "skincare")
    assert rows[8]["posted_at"] == ""
    assert rows[0]["posted_at"] == "2026-01-05T12:00:00+00:00"


@pytest.mark.parametrize("query, expected", [
    ({"source": "gold"}, 8),  # P1 3, P2 1, P3 2, P6 2
    ({"source": "gen-1"}, 3),  # P4 2, P5 1; P7 is invalid
    ({"source": "2"}, 1),  # P8
    ({"platform": "instagram"}, 2),  # P3
    ({"category": "makeup"}, 1),  # Fenty in P3
    ({"brand": "sk-ii"}, 5),  # P1 2, P2, P4, P6
    ({"date_from": "2026-02-01", "date_to": "2026-02-28"}, 4),  # P3 2, P4 2; undated P6 falls out
    ({"date_to": "2026-01-05"}, 3),  # the 'to' day is included whole
])
def test_mentions_filters(world, query, expected):
    assert len(table("mentions", **query)) == expected


def test_brand_summary_share_of_voice_and_change(world):
    rows = [(r["bucket"], r["category"], r["brand"], r["mentions"], r["posts"], r["category_mentions"],
             r["share_of_voice"], r["previous_mentions"], r["change"], r["change_pct"])
            for r in table("brand_summary")]
    assert rows == [
        # January skincare: SK-II 3 mentions in 2 posts, La Mer 1, of 4.
        ("2026-01-01", "skincare", "SK-II", 3, 2, 4, 0.75, 0, 3, ""),
        ("2026-01-01", "skincare", "La Mer", 1, 1, 4, 0.25, 0, 1, ""),
        ("2026-02-01", "makeup", "Fenty Beauty", 1, 1, 1, 1.0, 0, 1, ""),
        # February skincare: one each of 3 (P3 gold La Mer, P4 predicted SK-II and Glowlab).
        ("2026-02-01", "skincare", "Glowlab", 1, 1, 3, 0.3333, 0, 1, ""),
        ("2026-02-01", "skincare", "La Mer", 1, 1, 3, 0.3333, 1, 0, 0.0),
        ("2026-02-01", "skincare", "SK-II", 1, 1, 3, 0.3333, 3, -2, -66.7),
    ]


def test_brand_summary_shows_a_drop_to_zero_inside_the_date_range(world):
    rows = table("brand_summary", date_to="2026-03-31", category="makeup", bucket="month")
    assert [(r["bucket"], r["brand"], r["mentions"], r["change"], r["change_pct"]) for r in rows] == [
        ("2026-02-01", "Fenty Beauty", 1, 1, ""), ("2026-03-01", "Fenty Beauty", 0, -1, -100.0)]


def test_brand_summary_weeks_start_on_monday(world):
    rows = table("brand_summary", bucket="week", brand="La Mer")
    # 2026-01-05 is a Monday; 2026-02-10 is a Tuesday of the week of 2026-02-09. Each bucket is followed
    # by a zero row for the week after, up to the last week with data (2026-02-09).
    assert [(r["bucket"], r["mentions"]) for r in rows] == [("2026-01-05", 1), ("2026-01-12", 0), ("2026-02-09", 1)]


def test_co_mentions(world):
    rows = [(r["brand_a"], r["brand_b"], r["posts_together"], r["posts_a"], r["posts_b"], r["jaccard"])
            for r in table("co_mentions")]
    # Posts per brand: SK-II 4 (P1 P2 P4 P6), La Mer 3 (P1 P3 P6), Fenty 1, Glowlab 1.
    assert rows == [
        ("La Mer", "SK-II", 2, 3, 4, 0.4),  # 2 / (3 + 4 - 2)
        ("Fenty Beauty", "La Mer", 1, 1, 3, 0.3333),
        ("Glowlab", "SK-II", 1, 1, 4, 0.25),
    ]
    filtered = [(r["brand_a"], r["brand_b"], r["posts_together"]) for r in table("co_mentions", brand="SK-II")]
    assert filtered == [("SK-II", "La Mer", 2), ("SK-II", "Glowlab", 1)]
    # A date range drops the undated P6: La Mer + SK-II only in P1 now, 1 / (2 + 3 - 1).
    dated = {(r["brand_a"], r["brand_b"]): r["jaccard"] for r in table("co_mentions", date_from="2026-01-01")}
    assert dated == {("Fenty Beauty", "La Mer"): 0.5, ("Glowlab", "SK-II"): 0.3333, ("La Mer", "SK-II"): 0.25}


def test_emerging_rate_and_growth(world):
    filters = report_filters_parse({})
    emerging = Emerging(filters, min_mentions=1, prior_posts=2)
    run_pass(filters, [emerging], dated_only=True)
    # Period: first to last dated covered post, 2026-01-05 .. 2026-02-20 = 47 days; halves of 23 / 24 days.
    assert (emerging.period.start, emerging.period.middle, emerging.period.end) == (
        date(2026, 1, 5), date(2026, 1, 28), date(2026, 2, 20))
    # Covered posts: P1 P2 | P3 P4 P5 (P5's gold has no brands but was looked at).
    assert emerging.covered_counts() == (2, 3)
    rows = [(r.brand, r.m1, r.m2, r.rate1, r.rate2, r.growth) for r in emerging.rows()]
    # Smoothed rate (m + 2 r) / (P + 2), r = the brand's mentions / 5 posts over the period.
    assert rows == [
        ("Fenty Beauty", 0, 1, 0.0, 333.33, 2.8),  # r = .2: (1 + .4) / 5 over (0 + .4) / 4
        ("Glowlab", 0, 1, 0.0, 333.33, 2.8),
        ("La Mer", 1, 1, 500.0, 333.33, 0.8),  # r = .4: (1 + .8) / 5 over (1 + .8) / 4
        ("SK-II", 3, 1, 1500.0, 333.33, 0.452),  # r = .8: (1 + 1.6) / 5 over (3 + 1.6) / 4
    ]
    # The CSV keeps the defaults: 50 pseudo-posts pull these tiny halves towards x1, and only SK-II has
    # the 3 mentions needed to be listed: (1 + 40) / 53 over (3 + 40) / 52.
    csv_rows = table("emerging")
    assert [(r["brand"], r["growth"], r["first_half_start"], r["second_half_start"]) for r in csv_rows] == [
        ("SK-II", 0.935, "2026-01-05", "2026-01-28")]


def test_emerging_brand_new_in_the_second_half_ranks_first(db):
    w = World()
    for i in range(40):  # 20 posts a half; Newbrand only in the second, Oldbrand steady
        day = f"2026-03-{1 + i // 2:02d}"  # days 1-10 are the first half, 11-20 the second
        mentions = [(w.lamer, w.skincare, "la mer")]
        if i >= 20 and i % 2 == 0:
            mentions.append(("Newbrand", w.skincare, "newbrand"))
        w.gold(w.post(f"post {i}", "tiktok", day), *mentions)
    rows = table("emerging", source="gold", date_from="2026-03-01", date_to="2026-03-20")
    assert [(r["brand"], r["brand_linked"], r["mentions_first_half"], r["mentions_second_half"]) for r in rows] == [
        ("Newbrand", "no", 0, 10), ("La Mer", "yes", 20, 20)]
    # Newbrand: r = 10 / 40, prior = 12.5: (10 + 12.5) / 70 over 12.5 / 70 = 1.8. La Mer stays at x1.
    assert [r["growth"] for r in rows] == [1.8, 1.0]


def test_one_pass_feeds_several_reports_like_separate_passes(world):
    filters = report_filters_parse({"bucket": "week"})
    summary, co = BrandSummary(filters), CoMentions(filters)
    run_pass(filters, [summary, co])
    assert [r.as_list() for r in summary.rows()] == [list(r) for r in report_table("brand_summary", filters)[1]]
    assert [r.as_list() for r in co.rows()] == [list(r) for r in report_table("co_mentions", filters)[1]]


# --- filters -------------------------------------------------------------------------------------

@pytest.mark.parametrize("query, field, words", [
    ({"date_from": "2026-13-01"}, "date_from", "YYYY-MM-DD"),
    ({"date_from": "2026-03-01", "date_to": "2026-02-01"}, "date_to", "before"),
    ({"platform": "myspace"}, "platform", "instagram, tiktok"),
    ({"category": "food"}, "category", "Unknown category"),
    ({"brand": "Nope Cosmetics"}, "brand", "No brand"),
    ({"source": "gen-99"}, "source", "no generation gen-99"),
    ({"source": "teacher"}, "source", "gold, auto"),
    ({"bucket": "year"}, "bucket", "day, week or month"),
])
def test_bad_filter_values_are_named(world, query, field, words):
    with pytest.raises(ReportFilterError) as caught:
        report_filters_parse(query)
    assert words in caught.value.errors[field]


def test_auto_without_a_promoted_generation_reads_gold_only(world):
    ModelGeneration.objects.filter(number=1).update(status="retired")
    filters = report_filters_parse({})
    assert (filters.source, filters.model_version) == ("auto", "")
    assert len(table("mentions")) == 8


# --- web -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("role, status", [(Role.ANNOTATOR, 403), (Role.REVIEWER, 403), (Role.ANALYST, 200),
                                          (Role.ADMIN, 200)])
def test_who_may_see_reports(world, client_as, role, status):
    client = client_as(role)
    assert client.get(reverse("reports")).status_code == status
    assert client.get(reverse("reports_export", args=["mentions"])).status_code == status


def test_anonymous_is_sent_to_login(world, client):
    response = client.get(reverse("reports_export", args=["mentions"]))
    assert response.status_code == 302 and "login" in response["Location"]


def test_page_shows_tables_and_server_side_charts(world, client_as, settings):
    settings.REPORTS_SOV_MIN_MENTIONS = 1  # the world's months are small
    response = client_as(Role.ANALYST).get(reverse("reports"))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count("<svg") == 2 and "<polygon" in html and "<rect" in html
    assert "La Mer + SK-II" in html  # the top pair's bar
    assert "10 mentions in 5 posts" in html
    assert "gen-1 (promoted)" in html
    assert "/reports/brand_summary.csv?" in html
    assert "<script" not in html.split("<main")[1]  # no chart library


def test_share_of_voice_leaves_out_months_with_too_few_mentions(world, client_as, settings):
    """January and February have 4 mentions each; one post in March would be a 100% spike."""
    world.gold(world.post("p9 fenty", "tiktok", "2026-03-03"), (world.fenty, world.makeup, "fenty"))
    settings.REPORTS_SOV_MIN_MENTIONS = 4
    html = client_as(Role.ANALYST).get(reverse("reports")).content.decode()
    chart = html.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert ">2026-01<" in chart and ">2026-02<" in chart and ">2026-03<" not in chart
    assert "1 month with fewer than 4 mentions is left out of the chart" in html
    assert "SK-II: 50% of the period" in chart  # 4 of the 8 charted mentions; March's Fenty is not among them
    settings.REPORTS_SOV_MIN_MENTIONS = 5
    html = client_as(Role.ANALYST).get(reverse("reports"), {"platform": "instagram"}).content.decode()
    assert "Every month here has fewer than 5 mentions: too few for shares." in html
    assert "<polygon" not in html.split("<svg", 1)[1].split("</svg>", 1)[0]


def test_page_totals_with_a_brand_filter_are_that_brands(world, client_as):
    html = client_as(Role.ANALYST).get(reverse("reports"), {"brand": "SK-II"}).content.decode()
    # SK-II: P1 twice, P2, P4 (gen-1) and P6 (undated); the page used to give every brand's 10 in 5 posts.
    assert "5 mentions of SK-II in 4 posts" in html and "1 posts have no date" in html


def test_a_repost_counts_as_volume_on_its_own_platform_and_date(world, client_as):
    """P3 (Instagram, February: La Mer + Fenty) reposted on TikTok in March under another id: the text is
    annotated once, and the reports count the copy where and when it was posted."""
    from annotation.models import Repost

    p3 = Post.objects.get(text="p3 la mer fenty")
    Repost.objects.create(post=p3, platform="tiktok", external_id="tt-77", posted_at=at("2026-03-04"))
    client = client_as(Role.ANALYST)
    html = client.get(reverse("reports"), {"source": "gold"}).content.decode()
    # Gold mentions: P1 3, P2 1, P3 2, P6 2 = 8 in 4 posts, + the repost's 2 in a fifth.
    assert "10 mentions in 5 posts (4 unique texts; 1 repost of them counted as volume)" in html
    rows = download(client, "mentions", source="gold", platform="tiktok")
    copies = [r for r in rows if r["repost_id"]]
    assert [(r["post_id"], r["platform"], r["posted_at"][:10], r["brand"]) for r in copies] == [
        (str(p3.pk), "tiktok", "2026-03-04", "La Mer"), (str(p3.pk), "tiktok", "2026-03-04", "Fenty Beauty")]
    assert all(r["repost_id"] == "tt-77" for r in copies)
    assert not any(r["post_id"] == str(p3.pk) and not r["repost_id"] for r in rows)  # the original is Instagram's
    summary = download(client, "brand_summary", source="gold", bucket="month")
    march = {(r["bucket"], r["brand"]): int(r["mentions"]) for r in summary if r["bucket"] == "2026-03-01"}
    assert march == {("2026-03-01", "La Mer"): 1, ("2026-03-01", "Fenty Beauty"): 1}
    # The copy is a covered post in the emerging brands' denominators too (halves split on 2026-02-17):
    # P1 P2 P3 P4 | P5 and the copy; on TikTok, P1 P2 P4 | P5 and the copy, not P3 itself (Instagram).
    span = {"date_from": "2026-01-05", "date_to": "2026-03-31"}
    assert Emerging(report_filters_parse(span)).covered_counts() == (4, 2)
    assert Emerging(report_filters_parse({**span, "platform": "tiktok"})).covered_counts() == (3, 2)


def test_page_figures_are_kept_until_the_data_changes(world, client_as, settings):
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.REPORTS_PAGE_CACHE_SECONDS = 300
    cache.clear()
    client = client_as(Role.ANALYST)
    client.get(reverse("reports"), {"platform": "tiktok"})
    with CaptureQueriesContext(connection) as again:
        html = client.get(reverse("reports"), {"platform": "tiktok"}).content.decode()
    assert "8 mentions in 4 posts" in html  # P1 3, P2 1, P4 2, P6 2
    assert not any("annotation_span" in q["sql"] and "ORDER BY" in q["sql"] for q in again.captured_queries)
    world.gold(world.post("p9 new", "tiktok", "2026-02-27"), (world.fenty, world.makeup, "fenty"))
    html = client.get(reverse("reports"), {"platform": "tiktok"}).content.decode()
    assert "9 mentions in 5 posts" in html


def test_page_with_a_bad_filter_is_a_400_that_says_why(world, client_as):
    response = client_as(Role.ANALYST).get(reverse("reports"), {"date_from": "yesterday", "bucket": "year"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "&#x27;yesterday&#x27; is not a date" in html and "Unknown time bucket" in html


def test_csv_download_streams_header_first_and_filters(world, client_as):
    client = client_as(Role.ANALYST)
    response = client.get(reverse("reports_export", args=["mentions"]), {"source": "gold", "platform": "tiktok"})
    assert response.streaming and response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="beautybrain-mentions.csv"' in response["Content-Disposition"]
    chunks = iter(response.streaming_content)
    assert next(chunks) == "\ufeff".encode() + b"post_id,platform,posted_at,brand,brand_linked,category,mention_text,source," \
                           b"model_version,confidence,repost_id\r\n"
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    assert len(rows) == 6 and {r[1] for r in rows} == {"tiktok"}  # P1 3, P2 1, P6 2


def test_csv_header_goes_out_before_any_report_query(world, client_as):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client_as(Role.ANALYST).get(reverse("reports_export", args=["brand_summary"]))
    chunks = iter(response.streaming_content)
    with CaptureQueriesContext(connection) as before_header:
        assert next(chunks).startswith("\ufeffbucket,category,brand,".encode())
    assert len(before_header) == 0
    with CaptureQueriesContext(connection) as rest:
        assert b"SK-II" in b"".join(chunks)
    assert len(rest) <= 6  # the KB maps and one cursor per source, whatever the number of posts


def test_mentions_export_query_count_does_not_grow_with_posts(world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            rows = table("mentions")
        return len(captured), len(rows)

    before, rows_before = queries()
    for i in range(5):
        world.gold(world.post(f"extra gold {i}", "tiktok", "2026-03-01"), (world.fenty, world.makeup, "fenty"))
        world.predict(world.post(f"extra predicted {i}", "tiktok", "2026-03-02"), "gen-1",
                      (world.lamer, "skincare", "la mer", 0.8))
    after, rows_after = queries()
    assert rows_after == rows_before + 10
    assert after == before


@pytest.mark.parametrize("query, words", [
    ({"date_to": "31/01/2026"}, b"date_to: '31/01/2026' is not a date"),
    ({"source": "gen-x"}, b"source: Unknown source"),
])
def test_csv_bad_filter_is_a_400_not_a_500(world, client_as, query, words):
    response = client_as(Role.ANALYST).get(reverse("reports_export", args=["co_mentions"]), query)
    assert response.status_code == 400 and words in response.content


def test_csv_unknown_kind_is_a_400(world, client_as):
    response = client_as(Role.ADMIN).get(reverse("reports_export", args=["everything"]))
    assert response.status_code == 400 and b"Unknown report 'everything'" in response.content


def test_csv_escapes_formula_cells_but_not_numbers(world, client_as):
    post = world.post("=HYPERLINK evil post", "tiktok", "2026-02-11")
    world.gold(post, ("=HYPERLINK(\"http://x\")", world.skincare, "@evil"), ("+cmd", world.skincare, "-1+1"),
               ("\tTabbed", world.skincare, "\rcr"))
    rows = download(client_as(Role.ANALYST), "mentions", source="gold", date_from="2026-02-11",
                    date_to="2026-02-11")
    assert [(r["brand"], r["mention_text"]) for r in rows] == [
        ("'=HYPERLINK(\"http://x\")", "'@evil"), ("'+cmd", "'-1+1"), ("'\tTabbed", "'\rcr")]
    summary = download(client_as(Role.ANALYST), "brand_summary", source="gold", brand="SK-II")
    # Gold SK-II: 3 in January, none in February: the drop is the number -3, not a text "'-3".
    assert [(r["bucket"], r["change"]) for r in summary] == [("2026-01-01", "3"), ("2026-02-01", "-3")]


def test_cell_safe():
    assert [cell_safe(v) for v in ("=1+1", "+1", "-1", "@A1", "\t1", "\r1", "SK-II", "", None, -3, 0.5)] == [
        "'=1+1", "'+1", "'-1", "'@A1", "'\t1", "'\r1", "SK-II", "", "", -3, 0.5]


# --- command -------------------------------------------------------------------------------------

def test_export_report_command_writes_the_same_rows(world, tmp_path):
    out = tmp_path / "summary.csv"
    call_command("export_report", "--kind", "brand_summary", "--out", str(out), "--from", "2026-02-01",
                 "--to", "2026-02-28", "--category", "skincare", "--source", "auto", "--bucket", "month")
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [(r["brand"], r["mentions"], r["share_of_voice"]) for r in rows] == [
        ("Glowlab", "1", "0.3333"), ("La Mer", "1", "0.3333"), ("SK-II", "1", "0.3333")]
    with pytest.raises(CommandError, match="Unknown platform 'myspace'"):
        call_command("export_report", "--kind", "mentions", "--out", str(out), "--platform", "myspace")


@pytest.mark.pg
@pytest.mark.django_db(transaction=True)  # autocommit, as in production: the stream opens its own transaction
def test_the_same_numbers_on_postgresql(world, client_as):
    test_mentions_default_source_is_gold_else_promoted(world)
    test_brand_summary_share_of_voice_and_change(world)
    test_brand_summary_weeks_start_on_monday(world)
    test_co_mentions(world)
    test_emerging_rate_and_growth(world)
    test_csv_download_streams_header_first_and_filters(world, client_as)
    for query, expected in [({"source": "gold"}, 8), ({"source": "gen-1"}, 3), ({"brand": "sk-ii"}, 5),
                            ({"date_from": "2026-02-01", "date_to": "2026-02-28"}, 4)]:
        assert len(table("mentions", **query)) == expected
