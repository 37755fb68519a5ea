"""The annotation workflow in a real browser: queue → editor → submit, a stale tab, adjudication."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from annotation.models import Annotation, Post, Span
from annotation.services.queue import post_priority_refresh
from kb.models import Brand, Category
from tests.annotation import editor_factories as f
from tests.browser.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Emoji before the brands: 💅🏽 is one token but 2 code points and 4 UTF-16 units, ✨ one and one.
FIRST = "💅🏽✨ obsessed with my SK2 essence and the LM cream, worth it"
SECOND = "資生堂 sunscreen is the only one that doesn't pill under makeup"


def drag(page, first, last) -> None:
    """Press on the first character of `first`, release on the last character of `last`."""
    a, b = first.bounding_box(), last.bounding_box()
    page.mouse.move(a["x"] + 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=4)
    page.mouse.move(b["x"] + b["width"] - 1, b["y"] + b["height"] / 2, steps=2)
    page.mouse.up()


def tok(page, text: str, start: int):
    return page.locator(f'#text .tok[data-start="{start}"]', has_text=text)


@pytest.fixture
def setup_posts(settings):
    settings.ANNOTATION_DOUBLE_SHARE = 0
    f.mini_kb()
    first = f.post(FIRST)
    second = f.post(SECOND)
    sk2 = Brand.objects.get(canonical_name="SK-II")
    s = FIRST.index("SK2")
    f.prediction(first, "teacher", [{"start": s, "end": s + 3, "text": "SK2", "brand": "SK-II", "brand_id": sk2.pk,
                                     "category": "skincare", "confidence": 0.93}],
                 model_version="gemini-2.5-flash", confidence=0.93,
                 reasoning="SK2 is a common alias of SK-II; 'LM' is too short to be sure.")
    f.prediction(first, "gazetteer", [{"start": s, "end": s + 3, "text": "SK2", "brand": "SK-II", "brand_id": sk2.pk,
                                       "category": "skincare", "confidence": 1.0}], model_version="kb-1")
    f.prediction(first, "student", [], model_version="gen-3", confidence=0.42)
    post_priority_refresh(post_ids=[first.pk, second.pk])
    return first, second


def test_annotator_marks_links_accepts_and_submits_with_the_keyboard(live_server, browser_context, make_user, setup_posts, shot):
    first, second = setup_posts
    make_user("annotator", username="alice")
    page = browser_context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/queue/")
    page.wait_for_url(f"**/annotate/{first.pk}/")
    expect(page.locator(".source.teacher")).to_contain_text("SK2")
    expect(page.locator(".source.teacher .reasoning")).to_have_attribute("title", "SK2 is a common alias of SK-II; 'LM' is too short to be sure.")
    shot(page, "editor-1-suggestions")

    # Accept the teacher's suggestion.
    page.locator(".source.teacher [aria-label='Accept SK2']").click()
    sk2_start = FIRST.index("SK2")
    expect(page.locator(f'[data-span][data-key="{sk2_start}:{sk2_start + 3}"]')).to_contain_text("SK-II" if False else "SK2")
    expect(page.locator("#save-state")).to_contain_text("accepted")

    # Drag-select "LM" (one word after an emoji cluster), then give it a category and a brand.
    lm = FIRST.index("LM")
    drag(page, tok(page, "LM", lm), tok(page, "LM", lm))
    row = page.locator(f'[data-span][data-key="{lm}:{lm + 2}"]')
    expect(row).to_be_visible()
    expect(row).to_have_class("span-row unlinked selected")
    # Only the span list came back; the taken suggestion stays marked from the spans present.
    expect(page.locator(".source.teacher [data-sugg]")).to_have_attribute("data-state", "accepted")
    expect(page.locator(".source.teacher [data-accept-all]")).to_be_hidden()
    page.keyboard.press("Escape")
    expect(row).to_have_class("span-row unlinked")
    page.keyboard.press("k")  # nothing selected: k selects the last span, "LM"
    expect(row).to_have_class("span-row unlinked selected")
    page.keyboard.press("1")  # category 1 = skincare (Category.position)
    expect(row.locator(".cat.on")).to_have_text("1Skincare")
    page.keyboard.press("b")
    brand_input = row.locator(".brand-input")
    expect(brand_input).to_be_focused()
    brand_input.type("la m", delay=30)
    expect(row.locator(".ac-list [role=option]").first).to_contain_text("La Mer")
    page.keyboard.press("Enter")
    row = page.locator(f'[data-span][data-key="{lm}:{lm + 2}"]')
    expect(row.locator(".linked")).to_be_visible()
    expect(row.locator(".brand-input")).to_have_value("La Mer")
    expect(page.locator("#text .tag").nth(1)).to_have_text("Skincare · La Mer")
    shot(page, "editor-2-marked")

    # The help overlay.
    page.locator("#text").click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.keyboard.press("?")
    expect(page.locator("#help")).to_contain_text("Keyboard shortcuts")
    shot(page, "editor-3-help")
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_hidden()

    # Submit and move on with one key.
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/annotate/{second.pk}/")

    annotation = Annotation.objects.get(post=first, is_gold=False)
    assert annotation.status == Annotation.Status.SUBMITTED
    spans = {(s.start, s.end): s for s in Span.objects.filter(annotation=annotation).select_related("brand", "category")}
    assert set(spans) == {(sk2_start, sk2_start + 3), (lm, lm + 2)}
    # Code points, not the UTF-16 index a browser would have computed.
    assert sk2_start == 21 and len(FIRST[:sk2_start].encode("utf-16-le")) // 2 == 23
    assert spans[(sk2_start, sk2_start + 3)].brand.canonical_name == "SK-II"
    assert spans[(sk2_start, sk2_start + 3)].suggested_by == "teacher:gemini-2.5-flash"
    lm_span = spans[(lm, lm + 2)]
    assert (lm_span.text, lm_span.brand.canonical_name, lm_span.category.slug) == ("LM", "La Mer", "skincare")
    assert annotation.suggestions_accepted == 1
    assert annotation.active_seconds > 0

    # Second post: CJK brand, one token per character; the drag snaps to the three of them.
    drag(page, tok(page, "資", 0), tok(page, "堂", 2))
    row = page.locator('[data-span][data-key="0:3"]')
    expect(row.locator(".brand-input")).to_have_value("Shiseido")  # linked through its Japanese alias
    shot(page, "editor-4-cjk")
    # Delete it with the keyboard, then undo.
    page.keyboard.press("Delete")
    expect(row).to_have_count(0)
    page.keyboard.press("u")
    expect(page.locator('[data-span][data-key="0:3"]')).to_be_visible()
    assert list(Span.objects.filter(annotation__post=second).values_list("start", "end", "text")) == [(0, 3, "資生堂")]
    assert errors == []


def test_a_stale_tab_gets_a_conflict_and_can_reapply(live_server, browser_context, make_user, setup_posts, shot):
    first, _ = setup_posts
    make_user("annotator", username="bea")
    tab1 = browser_context.new_page()
    login(tab1, live_server.url, "bea")
    tab1.goto(f"{live_server.url}/queue/")
    tab1.wait_for_url(f"**/annotate/{first.pk}/")
    tab2 = browser_context.new_page()
    tab2.goto(tab1.url)

    tab1.locator(".source.teacher [data-accept-all]").click()
    sk2 = FIRST.index("SK2")
    expect(tab1.locator(f'[data-span][data-key="{sk2}:{sk2 + 3}"]')).to_be_visible()

    # The second tab still shows version 1: its change must not overwrite the first tab's.
    lm = FIRST.index("LM")
    drag(tab2, tok(tab2, "LM", lm), tok(tab2, "LM", lm))
    conflict = tab2.locator("#conflict")
    expect(conflict).to_contain_text("changed in another tab")
    expect(conflict).to_contain_text("mark “LM” as a brand")
    expect(tab2.locator(f'[data-span][data-key="{sk2}:{sk2 + 3}"]')).to_be_visible()  # fresh state shown
    expect(tab2.locator("#save-state")).to_contain_text("Conflict")
    shot(tab2, "editor-5-conflict")
    assert list(Span.objects.filter(annotation__post=first).values_list("text", flat=True)) == ["SK2"]

    tab2.get_by_role("button", name="Re-apply my change").click()
    expect(tab2.locator(f'[data-span][data-key="{lm}:{lm + 2}"]')).to_be_visible()
    expect(tab2.locator("#conflict")).to_have_count(0)
    assert sorted(Span.objects.filter(annotation__post=first).values_list("text", flat=True)) == ["LM", "SK2"]
    assert Annotation.objects.get(post=first, is_gold=False).version == 3


def test_a_reviewer_merges_two_annotations_into_gold(live_server, browser_context, make_user, shot):
    f.mini_kb()
    post = f.post("my SK2 essence > la mer tbh, glossier too")
    sk2, la_mer = Brand.objects.get(canonical_name="SK-II"), Brand.objects.get(canonical_name="La Mer")
    skincare = Category.objects.get(slug="skincare")
    ann = f.submitted(post, make_user("annotator", username="ann"), [(3, 6)], brand=sk2, category=skincare)
    bob = f.submitted(post, make_user("annotator", username="bob"), [(3, 6), (17, 23)], brand=sk2, category=skincare)
    Span.objects.filter(annotation=bob, start=17).update(brand=la_mer)
    f.prediction(post, "teacher", [(3, 6), (17, 23), (29, 37)], model_version="gemini-2.5-flash",
                 reasoning="SK2 = SK-II; la mer = La Mer; glossier = Glossier.")
    make_user("reviewer", username="rita")

    page = browser_context.new_page()
    login(page, live_server.url, "rita")
    page.get_by_role("link", name="Review").first.click()
    page.get_by_role("link", name=f"#{post.pk}").click()
    bob_col = page.locator(f'[data-annotation="{bob.pk}"]')
    expect(bob_col.locator(".rv-span.differs")).to_contain_text("la mer")
    expect(page.locator(f'[data-annotation="{ann.pk}"] .rv-span.same input')).to_be_checked()
    bob_col.locator(".rv-span.differs input").check()
    shot(page, "review-1-side-by-side", full_page=True)
    page.locator("#merge").click()
    expect(page.locator("#gold")).to_contain_text("la mer")
    shot(page, "review-2-gold", full_page=True)

    gold = Annotation.objects.get(post=post, is_gold=True)
    assert sorted(gold.spans.values_list("start", "end", "brand__canonical_name")) == [(3, 6, "SK-II"), (17, 23, "La Mer")]
    assert Annotation.objects.get(pk=bob.pk).status == Annotation.Status.ACCEPTED
    assert Annotation.objects.get(pk=ann.pk).status == Annotation.Status.REJECTED
    assert Post.objects.get(pk=post.pk).priority < 0
