"""An admin grows the knowledge base in a real browser (/kb/candidates/): a brand annotators marked that the KB
lacks becomes a brand, a teacher's form of a known brand becomes its alias; then the dictionary (gazetteer)
pre-labelling finds them in new posts, and an annotator sees the suggestion."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from annotation.models import Prediction, Span
from kb.models import AliasRejection, Brand, BrandAlias, Category
from modeling.services.prelabel import gazetteer_predict_batch, prelabel_run_start
from tests.annotation import editor_factories as f
from tests.browser.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def candidates_page(page, base_url: str):
    login(page, base_url, "ada")
    page.locator("nav.mainnav").get_by_role("link", name="Brand candidates", exact=True).click()
    page.wait_for_url("**/kb/candidates/")


def gazetteer_spans(post) -> list[tuple]:
    """What the pre-label service's gazetteer source would store for `post`."""
    [row] = gazetteer_predict_batch([post])
    return [(s["start"], s["end"], s["text"], s["brand"]) for s in row["spans"]]


def test_admin_creates_a_brand_from_annotators_mentions_and_the_gazetteer_finds_it(
        live_server, browser_context, make_user, settings, shot):
    settings.ANNOTATION_DOUBLE_SHARE = 0
    f.mini_kb()
    skincare, makeup = Category.objects.get(slug="skincare"), Category.objects.get(slug="makeup")
    ann = make_user("annotator", username="ann")
    first = f.post("the glowlab vitamin c serum slaps")
    second = f.post("GlowLab dupes of SK2? asking for a friend")
    for post, start in ((first, 4), (second, 0)):
        a = f.submitted(post, ann, [(start, start + 7)], category=skincare)
        a.spans.update(brand_text="Glowlab")
    new_post = f.post("anyone tried glowlab's night mask?")
    assert gazetteer_spans(new_post) == []  # the KB does not know it yet
    make_user("admin", username="ada")
    make_user("annotator", username="cara")

    page = browser_context.new_page()
    candidates_page(page, live_server.url)
    row = page.locator("table").first.locator("tr", has_text="Glowlab")
    expect(row.locator("td.num")).to_have_text(["2", "2"])  # mentions, posts
    expect(row.get_by_label("Category of Glowlab")).to_have_value(str(skincare.pk))  # the annotators' category
    row.get_by_label("Category of Glowlab").select_option(label="Makeup")
    shot(page, "kb-1-candidates", full_page=True)
    row.get_by_role("button", name="Create “Glowlab”").click()
    expect(page.locator(".messages")).to_contain_text("Created Glowlab; 2 mentions linked.")
    expect(page.locator("table").first).to_contain_text("No unlinked mentions.")

    brand = Brand.objects.get(canonical_name="Glowlab")
    assert brand.category == makeup and brand.is_active
    assert BrandAlias.objects.filter(brand=brand, normalized="glowlab").exists()
    assert sorted(Span.objects.filter(annotation__post__in=[first, second]).values_list("brand__canonical_name", "brand_text")) == [
        ("Glowlab", ""), ("Glowlab", "")]

    # The dictionary now finds it (possessive outside the span), through the pre-label service...
    run = prelabel_run_start(source="gazetteer", only_unlabelled=True, sync=True)
    assert (run.status, run.total, run.ok) == ("done", 1, 1)
    prediction = Prediction.objects.get(post=new_post, source="gazetteer")
    assert [(s["start"], s["end"], s["text"], s["brand"], s["brand_id"], s["category"]) for s in prediction.spans] == [
        (13, 20, "glowlab", "Glowlab", brand.pk, "makeup")]

    # ...and an annotator taking the post from the queue gets it as a suggestion.
    page.locator("form[action$='/logout/'] button").click()
    login(page, live_server.url, "cara")
    page.goto(f"{live_server.url}/queue/")
    page.wait_for_url(f"**/annotate/{new_post.pk}/")
    suggestion = page.locator(".source.gazetteer [data-sugg]")
    expect(suggestion).to_have_count(1)
    expect(suggestion.locator(".span-text")).to_have_text("glowlab")
    expect(suggestion).to_contain_text("→ Glowlab · Makeup")
    shot(page, "kb-2-gazetteer-suggestion")


def test_admin_accepts_and_rejects_teacher_alias_candidates_and_the_gazetteer_follows(
        live_server, browser_context, make_user, shot):
    f.mini_kb()
    lancome, la_mer = Brand.objects.get(canonical_name="Lancôme"), Brand.objects.get(canonical_name="La Mer")
    for text in ("兰蔻小黑瓶 yyds", "兰蔻 vs 雅诗兰黛 which serum", "LM cream is so rich"):
        post = f.post(text)
        spans = [{"start": 0, "end": 2, "text": text[:2], "brand": "La Mer" if text.startswith("LM") else "Lancôme",
                  "category": "skincare", "confidence": 0.9}]
        f.prediction(post, "teacher", spans, model_version="gemini-2.5-flash")
    chinese, latin = f.post("兰蔻的粉底液真的好用"), f.post("the LM moisturizer broke me out")
    assert gazetteer_spans(chinese) == [] and gazetteer_spans(latin) == []
    make_user("admin", username="ada")

    page = browser_context.new_page()
    candidates_page(page, live_server.url)
    aliases = page.locator("#aliases + p + table")
    lanc_row, lm_row = aliases.locator("tr", has_text="兰蔻"), aliases.locator("tr", has_text="La Mer")
    expect(lanc_row.locator("td").nth(1)).to_have_text("Lancôme")
    expect(lanc_row.locator("td.num")).to_have_text(["2", "2"])
    expect(lm_row.locator("td.num")).to_have_text(["1", "1"])
    shot(page, "kb-3-alias-candidates", full_page=True)

    lanc_row.get_by_role("button", name="Accept as alias").click()
    expect(page.locator(".messages")).to_contain_text("“兰蔻” is now an alias of Lancôme")
    lm_row = page.locator("#aliases + p + table tr", has_text="La Mer")
    lm_row.get_by_role("button", name="Reject").click()
    expect(page.locator(".messages")).to_contain_text("“LM” will not be proposed for La Mer again.")
    expect(page.locator("#aliases + p + table")).to_contain_text("No proposals")
    page.reload()  # a rejected pair stays away
    expect(page.locator("#aliases + p + table")).to_contain_text("No proposals")

    alias = BrandAlias.objects.get(alias="兰蔻")
    assert (alias.brand, alias.origin) == (lancome, "teacher")
    assert AliasRejection.objects.filter(normalized="lm", brand=la_mer).exists()
    assert not BrandAlias.objects.filter(normalized="lm").exists()

    run = prelabel_run_start(source="gazetteer", posts=[chinese, latin], sync=True)
    assert (run.status, run.total) == ("done", 2)
    found = {p.post_id: [(s["start"], s["end"], s["text"], s["brand"]) for s in p.spans]
             for p in Prediction.objects.filter(source="gazetteer")}
    assert found == {chinese.pk: [(0, 2, "兰蔻", "Lancôme")], latin.pk: []}
