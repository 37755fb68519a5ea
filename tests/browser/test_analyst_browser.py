"""An analyst in a real browser: open the reports, narrow them with filters, see the charts and tables
change, and download each CSV, whose rows must be the filtered ones."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from datetime import timezone as dt_timezone
from pathlib import Path

import pytest
from playwright.sync_api import expect

from annotation.models import Annotation, Post, Span
from annotation.services.importing import content_hash
from annotation.services.users import system_user
from kb.models import Brand
from tests.annotation import editor_factories as f
from tests.browser.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# (platform, day, brands) of gold posts. The filter below (instagram, February 2026) keeps P3 P4 P5 P8:
# La Mer 3 mentions, Fenty Beauty 2, SK-II 1; pairs La Mer + SK-II (P4) and Fenty Beauty + La Mer (P3).
POSTS = [
    ("tiktok", "2026-01-05", ["SK-II", "La Mer"]),         # P1
    ("tiktok", "2026-01-20", ["SK-II"]),                   # P2
    ("instagram", "2026-02-10", ["La Mer", "Fenty Beauty"]),  # P3
    ("instagram", "2026-02-15", ["SK-II", "La Mer"]),      # P4
    ("instagram", "2026-02-20", ["Fenty Beauty"]),         # P5
    ("tiktok", "2026-02-25", ["Glossier"]),                # P6
    ("instagram", "2026-03-02", ["La Mer"]),               # P7
    ("instagram", "2026-02-26", ["La Mer"]),               # P8
]
FEBRUARY_INSTAGRAM = {"platform": "instagram", "date_from": "2026-02-01", "date_to": "2026-02-28", "bucket": "week"}


@pytest.fixture(autouse=True)
def _every_month_charted(settings):
    """Eight posts: every week and month is below the chart's usual minimum volume."""
    settings.REPORTS_SOV_MIN_MENTIONS = 1


@pytest.fixture
def gold_posts():
    f.mini_kb()
    author = system_user()
    brands = {b.canonical_name: b for b in Brand.objects.select_related("category")}
    posts = []
    for i, (platform, day, names) in enumerate(POSTS, start=1):
        text = f"P{i}: " + " and ".join(names) + " this week"
        post = Post.objects.create(text=text, platform=platform, content_hash=content_hash(text),
                                   posted_at=datetime.fromisoformat(day).replace(hour=12, tzinfo=dt_timezone.utc))
        gold = Annotation.objects.create(post=post, annotator=author, is_gold=True, status="accepted", is_beauty=True)
        for name in names:
            start = text.index(name)
            Span.objects.create(annotation=gold, start=start, end=start + len(name), text=name, brand=brands[name],
                                category=brands[name].category)
        posts.append(post)
    return posts


def chart_state(page) -> dict:
    sov = page.locator("#results svg.chart").first
    return {
        "title": sov.get_attribute("aria-label"),
        "series": sorted(t.split(":")[0] for t in sov.locator("polygon > title").all_text_contents()),
        "buckets": sov.locator("text[text-anchor=middle]").all_text_contents(),
        "pairs": page.locator("#results svg.chart").nth(1).locator("rect > title").all_text_contents(),
    }


def table_rows(page, heading: str) -> list[list[str]]:
    card = page.locator("#results section.card", has=page.get_by_role("heading", name=heading))
    return [row.locator("td").all_inner_texts() for row in card.locator("tbody tr").all()]


def download_csv(page, label: str) -> tuple[str, list[dict]]:
    with page.expect_download() as info:
        page.get_by_role("link", name=f"⬇ {label} (CSV)").click()
    download = info.value
    body = Path(download.path()).read_bytes()
    assert body.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    return download.suggested_filename, list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


def test_analyst_filters_the_reports_and_downloads_matching_csvs(live_server, browser_context, make_user,
                                                                 gold_posts, shot):
    by_id = {p.pk: p for p in gold_posts}
    make_user("analyst", username="ana")
    page = browser_context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, live_server.url, "ana")
    expect(page.locator("nav.mainnav a")).to_have_text(["Reports"])  # an analyst sees only the reports
    page.locator("nav.mainnav").get_by_role("link", name="Reports").click()
    page.wait_for_url("**/reports/")

    results = page.locator("#results")
    expect(results.locator("p.muted").first).to_contain_text("11 mentions in 8 posts")
    before = chart_state(page)
    assert before["title"] == "Share of voice per month (across categories)"
    assert before["series"] == ["Fenty Beauty", "Glossier", "La Mer", "SK-II"]
    assert before["buckets"] == ["2026-01", "2026-02", "2026-03"]
    assert sorted(before["pairs"]) == ["Fenty Beauty + La Mer: 1", "La Mer + SK-II: 2"]
    assert [r[:3] for r in table_rows(page, "Top brands")] == [
        ["La Mer", "5", "5"], ["SK-II", "3", "3"], ["Fenty Beauty", "2", "2"], ["Glossier", "1", "1"]]
    shot(page, "reports-1-all", full_page=True)

    # Instagram, February, per week.
    page.locator("select[name=platform]").select_option("instagram")
    page.locator("input[name=date_from]").fill(FEBRUARY_INSTAGRAM["date_from"])
    page.locator("input[name=date_to]").fill(FEBRUARY_INSTAGRAM["date_to"])
    page.locator("select[name=bucket]").select_option("week")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(lambda url: "platform=instagram" in url and "bucket=week" in url)
    expect(results.locator("p.muted").first).to_contain_text("6 mentions in 4 posts")
    expect(page.locator("select[name=platform]")).to_have_value("instagram")  # the form keeps the filters
    after = chart_state(page)
    assert after["title"] == "Share of voice per week (across categories)"
    assert after["series"] == ["Fenty Beauty", "La Mer", "SK-II"]  # Glossier is only on TikTok
    assert after["buckets"] == ["2026-02-09", "2026-02-16", "2026-02-23"]
    assert sorted(after["pairs"]) == ["Fenty Beauty + La Mer: 1", "La Mer + SK-II: 1"]
    assert [r[:4] for r in table_rows(page, "Top brands")] == [
        ["La Mer", "3", "3", "50%"], ["Fenty Beauty", "2", "2", "33%"], ["SK-II", "1", "1", "17%"]]
    shot(page, "reports-2-filtered", full_page=True)

    # Every CSV is the filtered report.
    name, mentions = download_csv(page, "Mentions")
    assert name == "beautybrain-mentions-20260201-20260228.csv"
    assert sorted((int(r["post_id"]), r["brand"]) for r in mentions) == sorted(
        (p.pk, brand) for p, (platform, day, names) in zip(gold_posts, POSTS)
        if platform == "instagram" and day.startswith("2026-02") for brand in names)
    assert len(mentions) == 6
    for r in mentions:
        assert r["platform"] == "instagram" and by_id[int(r["post_id"])].platform == "instagram"
        assert "2026-02-01" <= r["posted_at"][:10] <= "2026-02-28" and r["source"] == "gold"

    _, summary = download_csv(page, "Brand summary")
    assert summary and all("2026-01-26" <= r["bucket"] <= "2026-02-23" for r in summary)
    mentions_per_brand = {}
    for r in summary:
        mentions_per_brand[r["brand"]] = mentions_per_brand.get(r["brand"], 0) + int(r["mentions"])
    assert mentions_per_brand == {"La Mer": 3, "Fenty Beauty": 2, "SK-II": 1}
    week_of_p3 = {r["brand"]: (int(r["mentions"]), r["share_of_voice"]) for r in summary
                  if r["bucket"] == "2026-02-09" and r["category"] == "skincare"}
    assert week_of_p3 == {"La Mer": (2, "0.6667"), "SK-II": (1, "0.3333")}  # P3 + P4, skincare only

    _, pairs = download_csv(page, "Co-mentions")
    assert {(frozenset((r["brand_a"], r["brand_b"])), int(r["posts_together"])) for r in pairs} == {
        (frozenset(("La Mer", "SK-II")), 1), (frozenset(("Fenty Beauty", "La Mer")), 1)}

    _, emerging = download_csv(page, "Emerging brands")
    # Only La Mer has the 3 mentions needed; the two halves are cut from the chosen dates.
    assert [(r["brand"], int(r["mentions_first_half"]) + int(r["mentions_second_half"]), r["first_half_start"],
             r["period_end"]) for r in emerging] == [("La Mer", 3, "2026-02-01", "2026-02-28")]
    assert [r[0] for r in table_rows(page, "Emerging brands")] == ["La Mer"]  # the page agrees
    assert errors == []


def test_analyst_sees_bad_filters_explained_and_no_report(live_server, browser_context, make_user, gold_posts, shot):
    make_user("analyst", username="ana")
    page = browser_context.new_page()
    login(page, live_server.url, "ana")
    page.goto(f"{live_server.url}/reports/")
    page.locator("input[name=date_from]").fill("2026-03-01")
    page.locator("input[name=date_to]").fill("2026-02-01")
    page.locator("input[name=brand]").fill("Not A Brand")
    page.get_by_role("button", name="Show").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("'to' (2026-02-01) is before 'from' (2026-03-01).")
    expect(alert).to_contain_text("No brand named 'Not A Brand' in the knowledge base.")
    expect(page.locator("#results")).to_be_empty()  # no figures for filters that mean nothing
    expect(page.locator("input[name=brand]")).to_have_value("Not A Brand")
    shot(page, "reports-3-bad-filters")
    # The same query on a CSV link is refused, not answered with an unfiltered file.
    response = page.request.get(f"{live_server.url}/reports/mentions.csv?date_from=2026-03-01&date_to=2026-02-01")
    assert response.status == 400 and "date_to" in response.text()

    # A brand filter narrows the report to that brand's mentions.
    page.locator("input[name=date_from]").fill("")
    page.locator("input[name=date_to]").fill("")
    page.locator("input[name=brand]").fill("sk-ii")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(lambda url: "brand=sk-ii" in url)
    # The share of voice keeps every brand as its denominator: SK-II's 3 of the 11 mentions.
    assert [r[:4] for r in table_rows(page, "Top brands")] == [["SK-II", "3", "3", "27%"]]
    assert chart_state(page)["series"] == ["Other", "SK-II"]
    _, mentions = download_csv(page, "Mentions")
    assert [r["brand"] for r in mentions] == ["SK-II"] * 3
    assert {int(r["post_id"]) for r in mentions} == {p.pk for p, (_, _, names) in zip(gold_posts, POSTS)
                                                     if "SK-II" in names}
