"""A reviewer in a real browser: accept one of two annotations as gold and decide again, refuse to decide on
a page an annotator's reopen made stale, and merge then edit the gold in the editor.
(Merging spans picked from two columns: test_editor_browser.py::test_a_reviewer_merges_two_annotations_into_gold.)"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from annotation.models import Annotation, Post
from kb.models import Brand, Category
from tests.annotation import editor_factories as f
from tests.browser.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TEXT = "my SK2 essence > la mer tbh, glossier too"
SK2, LA_MER, GLOSSIER = (3, 6), (17, 23), (29, 37)


@pytest.fixture
def two_annotations(make_user):
    """ann marks SK2; bob marks SK2 and la mer. Both linked, both skincare."""
    f.mini_kb()
    post = f.post(TEXT)
    sk2, la_mer = Brand.objects.get(canonical_name="SK-II"), Brand.objects.get(canonical_name="La Mer")
    skincare = Category.objects.get(slug="skincare")
    ann = f.submitted(post, make_user("annotator", username="ann"), [SK2], brand=sk2, category=skincare)
    bob = f.submitted(post, make_user("annotator", username="bob"), [SK2, LA_MER], brand=sk2, category=skincare)
    bob.spans.filter(start=LA_MER[0]).update(brand=la_mer)
    make_user("reviewer", username="rita")
    return post, ann, bob


def gold_spans(post) -> list[tuple]:
    gold = Annotation.objects.get(post=post, is_gold=True)
    return sorted(gold.spans.values_list("start", "end", "brand__canonical_name"))


def open_review(page, base_url: str, post) -> None:
    login(page, base_url, "rita")
    page.locator("nav.mainnav").get_by_role("link", name="Review", exact=True).click()
    row = page.locator("table tr", has=page.get_by_role("link", name=f"#{post.pk}"))
    expect(row.locator("td.num").first).to_have_text("2")  # two submitted annotations wait
    row.get_by_role("link", name=f"#{post.pk}").click()
    page.wait_for_url(f"**/review/{post.pk}/")


def test_reviewer_accepts_one_annotation_as_gold_then_decides_again(live_server, browser_context, two_annotations,
                                                                    shot):
    post, ann, bob = two_annotations
    page = browser_context.new_page()
    open_review(page, live_server.url, post)
    bob_col = page.locator(f'[data-annotation="{bob.pk}"]')
    expect(bob_col.locator(".rv-span.differs")).to_contain_text("la mer")
    expect(page.locator("#gold")).to_have_count(0)

    bob_col.get_by_role("button", name="Accept bob’s as gold").click()
    expect(page.locator(".messages")).to_contain_text("bob's annotation is now the gold one.")
    gold_card = page.locator("#gold")
    expect(gold_card.locator(".rv-span")).to_have_count(2)
    expect(gold_card).to_contain_text("SK-II")
    expect(gold_card).to_contain_text("La Mer")
    expect(gold_card).to_contain_text("by rita")
    expect(bob_col.locator("h3 .badge")).to_have_text("accepted")
    expect(page.locator(f'[data-annotation="{ann.pk}"] h3 .badge')).to_have_text("rejected")
    shot(page, "review-3-accepted", full_page=True)
    assert gold_spans(post) == [(*SK2, "SK-II"), (*LA_MER, "La Mer")]
    assert Annotation.objects.get(pk=bob.pk).status == Annotation.Status.ACCEPTED
    assert Annotation.objects.get(pk=ann.pk).status == Annotation.Status.REJECTED
    assert Post.objects.get(pk=post.pk).priority < 0  # out of the work queue
    first_gold = Annotation.objects.get(post=post, is_gold=True)

    # On second thoughts "la mer" is the cream's line, not a mention: keep SK2 only (ann's column is ticked).
    expect(page.locator(f'[data-annotation="{ann.pk}"] .rv-span input')).to_be_checked()
    page.locator("#merge").click()
    expect(page.locator(".messages")).to_contain_text("Merged into the gold annotation.")
    expect(page.locator("#gold .rv-span")).to_have_count(1)
    expect(page.locator("#gold")).not_to_contain_text("La Mer")
    assert gold_spans(post) == [(*SK2, "SK-II")]
    second_gold = Annotation.objects.get(post=post, is_gold=True)
    assert second_gold.pk == first_gold.pk and second_gold.version == first_gold.version + 1  # replaced, not added
    assert Annotation.objects.get(pk=ann.pk).status == Annotation.Status.ACCEPTED
    assert Annotation.objects.get(pk=bob.pk).status == Annotation.Status.REJECTED

    # A post with gold leaves the review queue.
    page.get_by_role("link", name="← Review").click()
    expect(page.locator("h1 .count")).to_have_text("0")
    expect(page.locator("table")).to_contain_text("Nothing waiting for review.")


def test_a_review_page_made_stale_by_a_reopen_refuses_to_decide(live_server, chromium, browser_context,
                                                                two_annotations, shot):
    post, ann, bob = two_annotations
    reviewer = browser_context.new_page()
    open_review(reviewer, live_server.url, post)
    expect(reviewer.locator(".rv-col[data-annotation]")).to_have_count(2)

    # Meanwhile ann, in her own browser, reopens her submitted annotation to change it.
    ann_context = chromium.new_context(viewport={"width": 1440, "height": 900})
    try:
        annotator = ann_context.new_page()
        login(annotator, live_server.url, "ann")
        annotator.goto(f"{live_server.url}/annotate/{post.pk}/")
        annotator.get_by_role("button", name="Reopen to change it").click()
        expect(annotator.locator("#save-state")).to_contain_text("reopened")
        expect(annotator.locator("#panel .submit-row .badge")).to_have_text("draft")
        expect(annotator.locator("#submit")).to_be_visible()
    finally:
        ann_context.close()
    reopened = Annotation.objects.get(pk=ann.pk)
    assert (reopened.status, reopened.version, reopened.submitted_at) == (Annotation.Status.DRAFT, ann.version + 1, None)

    # The reviewer's page still shows ann's submitted version: deciding on it is refused, nothing is written.
    reviewer.locator(f'[data-annotation="{bob.pk}"]').get_by_role("button", name="Accept bob’s as gold").click()
    expect(reviewer.locator(".messages .msg-error")).to_contain_text("changed since you opened the page")
    shot(reviewer, "review-4-stale-refused", full_page=True)
    assert not Annotation.objects.filter(post=post, is_gold=True).exists()
    assert Annotation.objects.get(pk=bob.pk).status == Annotation.Status.SUBMITTED
    assert Annotation.objects.get(pk=ann.pk).status == Annotation.Status.DRAFT

    # The redirect showed the fresh state: ann's draft is not up for review; bob's can now be accepted.
    expect(reviewer.locator(".rv-col[data-annotation]")).to_have_count(1)
    expect(reviewer.locator(f'[data-annotation="{ann.pk}"]')).to_have_count(0)
    reviewer.locator(f'[data-annotation="{bob.pk}"]').get_by_role("button", name="Accept bob’s as gold").click()
    expect(reviewer.locator(".messages")).to_contain_text("bob's annotation is now the gold one.")
    assert gold_spans(post) == [(*SK2, "SK-II"), (*LA_MER, "La Mer")]
    assert Annotation.objects.get(pk=ann.pk).status == Annotation.Status.DRAFT  # her draft is hers to finish


def test_reviewer_merges_then_edits_the_gold_in_the_editor(live_server, browser_context, two_annotations, shot):
    post, ann, bob = two_annotations
    f.prediction(post, "teacher", [SK2, LA_MER, GLOSSIER], model_version="gemini-2.5-flash",
                 reasoning="SK2 = SK-II; la mer = La Mer; glossier = Glossier.")
    page = browser_context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    open_review(page, live_server.url, post)
    expect(page.locator(".rv-col.source.teacher")).to_contain_text("glossier")  # the teacher's column, read-only
    page.locator(f'[data-annotation="{bob.pk}"] .rv-span.differs input').check()
    page.get_by_role("button", name="Merge, then edit").click()
    page.wait_for_url(f"**/annotate/{post.pk}/?gold=1")
    expect(page.locator(".ed-title .badge.gold")).to_have_text("gold")
    expect(page.locator("#spans-section h2 .count")).to_have_text("2")
    merged = Annotation.objects.get(post=post, is_gold=True)
    assert gold_spans(post) == [(*SK2, "SK-II"), (*LA_MER, "La Mer")]

    # In the gold: drop "la mer", take the teacher's "glossier" suggestion, save.
    page.get_by_role("button", name="Delete la mer").click()
    expect(page.locator(f'[data-span][data-key="{LA_MER[0]}:{LA_MER[1]}"]')).to_have_count(0)
    page.locator(".source.teacher [aria-label='Accept glossier']").click()
    glossier_row = page.locator(f'[data-span][data-key="{GLOSSIER[0]}:{GLOSSIER[1]}"]')
    expect(glossier_row.locator(".brand-input")).to_have_value("Glossier")  # linked by the KB
    shot(page, "review-5-gold-in-editor", full_page=True)
    page.get_by_role("button", name="Save gold").click()
    page.wait_for_url(f"**/review/{post.pk}/")
    expect(page.locator(".messages")).to_contain_text("Gold annotation saved.")
    expect(page.locator("#gold")).to_contain_text("Glossier")
    expect(page.locator("#gold")).not_to_contain_text("La Mer")

    gold = Annotation.objects.get(post=post, is_gold=True)
    assert gold.pk == merged.pk and gold.version > merged.version
    assert gold_spans(post) == [(*SK2, "SK-II"), (*GLOSSIER, "Glossier")]
    assert gold.spans.get(start=GLOSSIER[0]).suggested_by == "teacher:gemini-2.5-flash"
    assert errors == []
