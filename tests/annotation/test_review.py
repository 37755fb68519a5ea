import pytest
from django.urls import reverse

from annotation.agreement import PairCounts, agreement, cohen_kappa
from annotation.models import Annotation, Post, Span
from annotation.selectors import agreement_report, brand_candidates, progress_report
from annotation.services.review import ReviewError, gold_accept, gold_merge
from kb.models import Brand, Category
from tests.annotation import editor_factories as f

TEXT = "my SK2 essence > la mer tbh, glossier too"


@pytest.fixture
def kb(db):
    f.mini_kb()


# --- agreement math (no database) -------------------------------------------------------------

def test_cohen_kappa_matches_a_hand_computed_example():
    # 10 posts: both beauty 4, A yes/B no 2, A no/B yes 1, both no 3.
    # p_o = 7/10; A says yes 6/10, B 5/10; p_e = .6*.5 + .4*.5 = .5; kappa = (.7 - .5) / (1 - .5) = .4
    pairs = [(True, True)] * 4 + [(True, False)] * 2 + [(False, True)] + [(False, False)] * 3
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([(True, True), (False, False)]) == pytest.approx(1.0)
    assert cohen_kappa([(True, False), (False, True)]) == pytest.approx(-1.0)
    assert cohen_kappa([(True, True)] * 3) == 1.0  # p_e = 1: perfect agreement on one label
    assert cohen_kappa([]) is None


def test_span_f1_exact_and_partial_overlap():
    counts = PairCounts()
    counts.add_post({(0, 3), (5, 9)}, {(0, 3), (6, 9), (12, 15)}, True, True)
    assert counts.f1_exact == pytest.approx(2 * 1 / 5)      # one identical span out of 2 + 3
    assert counts.f1_partial == pytest.approx((2 + 2) / 5)  # (5,9)~(6,9) overlap; (12,15) matches nothing
    empty = PairCounts()
    empty.add_post(set(), set(), True, True)
    assert empty.f1_exact is None


def test_agreement_groups_pairs_and_pools_overall():
    rows = [
        {"post": 1, "annotator": "ann", "is_beauty": True, "spans": {(0, 3)}},
        {"post": 1, "annotator": "bob", "is_beauty": True, "spans": {(0, 3)}},
        {"post": 2, "annotator": "ann", "is_beauty": True, "spans": {(0, 4)}},
        {"post": 2, "annotator": "bob", "is_beauty": False, "spans": set()},
        {"post": 3, "annotator": "ann", "is_beauty": False, "spans": set()},
        {"post": 3, "annotator": "cid", "is_beauty": False, "spans": set()},
    ]
    result = agreement(rows)
    assert list(result["pairs"]) == [("ann", "bob"), ("ann", "cid")]
    ab = result["pairs"][("ann", "bob")]
    assert (ab.posts, ab.f1_exact) == (2, pytest.approx(2 / 3))
    assert result["overall"].posts == 3
    assert result["overall"].kappa == pytest.approx(cohen_kappa([(True, True), (True, False), (False, False)]))


# --- adjudication -------------------------------------------------------------------------------

@pytest.fixture
def two_annotations(kb, make_user):
    p = f.post(TEXT)
    sk2, la_mer = Brand.objects.get(canonical_name="SK-II"), Brand.objects.get(canonical_name="La Mer")
    skincare = Category.objects.get(slug="skincare")
    a = f.submitted(p, make_user("annotator", username="ann"), [(3, 6)], brand=sk2, category=skincare)
    b = f.submitted(p, make_user("annotator", username="bob"), [(3, 6), (17, 23)], brand=sk2, category=skincare)
    Span.objects.filter(annotation=b, start=17).update(brand=la_mer)
    return p, a, b


@pytest.mark.django_db
def test_accept_one_annotation_as_gold(two_annotations, make_user):
    p, a, b = two_annotations
    gold = gold_accept(annotation=b, reviewer=make_user("reviewer"))
    assert gold.is_gold and gold.origin == Annotation.Origin.REVIEW
    assert sorted(gold.spans.values_list("text", flat=True)) == ["SK2", "la mer"]
    a.refresh_from_db(), b.refresh_from_db()
    assert (a.status, b.status) == (Annotation.Status.REJECTED, Annotation.Status.ACCEPTED)
    assert Post.objects.get(pk=p.pk).priority < 0
    # Adjudicating again replaces the gold; there is never a second one.
    gold_accept(annotation=a, reviewer=make_user("reviewer"))
    assert Annotation.objects.filter(post=p, is_gold=True).count() == 1
    assert list(Annotation.objects.get(post=p, is_gold=True).spans.values_list("text", flat=True)) == ["SK2"]


@pytest.mark.django_db
def test_merge_takes_ticked_spans_from_several_annotators_once(two_annotations, make_user):
    p, a, b = two_annotations
    a_sk2 = a.spans.get(start=3)
    b_sk2, b_mer = b.spans.get(start=3), b.spans.get(start=17)
    gold = gold_merge(post=p, reviewer=make_user("reviewer"), span_ids=[a_sk2.pk, b_sk2.pk, b_mer.pk], is_beauty=True)
    assert list(gold.spans.order_by("start").values_list("start", "end")) == [(3, 6), (17, 23)]
    b.refresh_from_db()
    assert b.status == Annotation.Status.ACCEPTED


@pytest.mark.django_db
def test_merge_refuses_two_versions_of_one_span(two_annotations, make_user):
    p, a, b = two_annotations
    Span.objects.filter(annotation=b, start=3).update(brand=None, brand_text="SK Two")
    with pytest.raises(ReviewError, match="Two versions"):
        gold_merge(post=p, reviewer=make_user("reviewer"), span_ids=[a.spans.get().pk, b.spans.get(start=3).pk], is_beauty=True)
    assert not Annotation.objects.filter(post=p, is_gold=True).exists()


@pytest.mark.django_db
def test_review_pages_through_the_client(two_annotations, client_as):
    p, a, b = two_annotations
    client = client_as("reviewer")
    listing = client.get(reverse("review_list")).content.decode()
    assert f'href="{reverse("review_detail", args=[p.pk])}"' in listing
    page = client.get(reverse("review_detail", args=[p.pk])).content.decode()
    assert "ann" in page and "bob" in page and 'class="rv-span differs"' in page
    response = client.post(reverse("review_accept", args=[p.pk, a.pk]))
    assert response.status_code == 302
    assert Annotation.objects.get(post=p, is_gold=True).spans.count() == 1
    assert f'href="{reverse("review_detail", args=[p.pk])}"' not in client.get(reverse("review_list")).content.decode()


@pytest.mark.django_db
def test_annotators_cannot_review(client_as):
    assert client_as("annotator").get(reverse("review_list")).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("n_posts", [2, 25])
def test_review_list_runs_constant_queries(kb, make_user, client_as, django_assert_num_queries, n_posts):
    users = [make_user("annotator") for _ in range(2)]
    for i in range(n_posts):
        p = f.post(f"{TEXT} {i}")
        for u in users:
            f.submitted(p, u, [(3, 6)])
    client = client_as("reviewer")
    # session, user, groups, count, page of posts
    with django_assert_num_queries(5):
        response = client.get(reverse("review_list"))
    assert response.content.decode().count("/review/") >= min(n_posts, 50)


@pytest.mark.django_db
@pytest.mark.parametrize("n_annotators", [2, 5])
def test_review_detail_runs_constant_queries(kb, make_user, client_as, django_assert_num_queries, n_annotators):
    p = f.post(TEXT)
    f.prediction(p, "teacher", [(3, 6)])
    f.prediction(p, "gazetteer", [(3, 6), (17, 23)])
    skincare = Category.objects.get(slug="skincare")
    for _ in range(n_annotators):
        f.submitted(p, make_user("annotator"), [(3, 6), (17, 23)], category=skincare,
                    brand=Brand.objects.get(canonical_name="SK-II"))
    client = client_as("reviewer")
    # session, user, groups, post, annotations (+ annotators), spans, brands, categories, gold, predictions
    with django_assert_num_queries(10):
        client.get(reverse("review_detail", args=[p.pk]))


# --- agreement, progress and brand candidates from the database --------------------------------

@pytest.mark.django_db
def test_agreement_report_and_page(two_annotations, client_as):
    report = agreement_report()
    pair = report["pairs"][("ann", "bob")]
    assert (pair.a_spans, pair.b_spans, pair.exact) == (1, 2, 1)
    assert pair.f1_exact == pytest.approx(2 / 3)
    assert pair.kappa == 1.0
    page = client_as("reviewer").get(reverse("agreement")).content.decode()
    assert "0.667" in page


@pytest.mark.django_db
def test_progress_report_counts_today_medians_and_kept_suggestions(two_annotations):
    p, a, b = two_annotations
    Annotation.objects.filter(pk=a.pk).update(active_seconds=30, suggestions_accepted=1)
    Annotation.objects.filter(pk=b.pk).update(active_seconds=50, suggestions_accepted=0)
    f.post("another post nobody did")
    report = progress_report()
    by_name = {r["name"]: r for r in report["annotators"]}
    assert by_name["ann"]["done_today"] == 1 and by_name["ann"]["kept_share"] == 1.0
    assert by_name["bob"]["kept_share"] == 0.0
    assert report["overall"]["median_seconds"] == 40
    assert report["overall"]["kept_share"] == pytest.approx(1 / 3)
    assert by_name["ann"]["queue_left"] == 1 and report["overall"]["queue_left"] == 2


@pytest.mark.django_db
def test_brand_candidates_group_unlinked_mentions_and_resolve_links_them(kb, make_user, client_as):
    u1, u2 = make_user("annotator"), make_user("annotator")
    for i, (u, form) in enumerate([(u1, "Rare Beauty"), (u2, "rare beauty"), (u1, "RareBeauty")]):
        p = f.post(f"{form} blush is everything {i}")
        f.submitted(p, u, [(0, len(form))])
    cands = brand_candidates()
    assert [(c["normalized"], c["count"], c["posts"]) for c in cands] == [("rarebeauty", 3, 3)]
    client = client_as("admin")
    assert "Rare Beauty" in client.get(reverse("kb_candidates")).content.decode()
    makeup = Category.objects.get(slug="makeup")
    client.post(reverse("kb_candidate_resolve"), {"action": "create", "normalized": "rarebeauty", "name": "Rare Beauty",
                                                  "category": makeup.pk})
    brand = Brand.objects.get(canonical_name="Rare Beauty")
    assert Span.objects.filter(brand=brand).count() == 3
    assert brand_candidates() == []


@pytest.mark.django_db
def test_a_reviewer_edits_the_gold_in_the_editor_and_annotators_cannot(two_annotations, client_as, make_user):
    p, a, b = two_annotations
    gold_accept(annotation=a, reviewer=make_user("reviewer"))
    gold = Annotation.objects.get(post=p, is_gold=True)
    client = client_as("reviewer")
    page = client.get(reverse("editor", args=[p.pk]) + "?gold=1").content.decode()
    assert "Save gold" in page and 'class="badge gold"' in page
    url = reverse("editor_change", args=[p.pk]) + "?gold=1"
    assert client.post(url, {"op": "add", "start": 17, "end": 23, "version": gold.version}).status_code == 200
    response = client.post(reverse("editor_submit", args=[p.pk]) + "?gold=1", {"version": gold.version + 1})
    assert response.status_code == 302 and response.url == reverse("review_detail", args=[p.pk])
    assert sorted(Annotation.objects.get(pk=gold.pk).spans.values_list("text", flat=True)) == ["SK2", "la mer"]
    annotator = client_as("annotator")
    assert annotator.get(reverse("editor", args=[p.pk]) + "?gold=1").status_code == 403
    # A reviewed annotation is read-only for its author.
    client.force_login(a.annotator)
    body = client.post(reverse("editor_change", args=[p.pk]), {"op": "delete", "start": 3, "end": 6, "version": a.version})
    assert body.status_code == 422 and "can no longer change" in body.content.decode()
    assert Span.objects.filter(annotation=a).count() == 1


# --- review integrity: a decision is made on what the reviewer saw ----------------------------

def _shown_on_page(client, post) -> str:
    import re

    page = client.get(reverse("review_detail", args=[post.pk])).content.decode()
    return re.search(r'name="shown" value="([^"]*)"', page).group(1)


@pytest.mark.django_db
def test_accept_refuses_an_annotation_reopened_and_changed_after_the_page_was_shown(two_annotations, client_as):
    from annotation.services.editor import annotation_change, annotation_reopen, annotation_submit

    p, a, b = two_annotations
    client = client_as("reviewer")
    shown = _shown_on_page(client, p)
    # Meanwhile ann reopens her work, adds La Mer and submits again.
    a = annotation_reopen(annotation=a, version=a.version)
    applied = annotation_change(annotation=a, version=a.version, op={"op": "add", "start": 17, "end": 23})
    annotation_submit(annotation=applied.annotation, version=applied.annotation.version)
    response = client.post(reverse("review_accept", args=[p.pk, a.pk]), {"shown": shown}, follow=True)
    assert "changed since you opened the page" in response.content.decode()
    assert not Annotation.objects.filter(post=p, is_gold=True).exists()
    # Reloaded, the same click works, on the version now shown.
    client.post(reverse("review_accept", args=[p.pk, a.pk]), {"shown": _shown_on_page(client, p)})
    assert sorted(Annotation.objects.get(post=p, is_gold=True).spans.values_list("text", flat=True)) == ["SK2", "la mer"]


@pytest.mark.django_db
def test_merge_refuses_when_another_reviewer_decided_first(two_annotations, client_as, make_user):
    p, a, b = two_annotations
    client = client_as("reviewer")
    shown = _shown_on_page(client, p)
    gold_accept(annotation=a, reviewer=make_user("reviewer"))  # a second reviewer, faster
    span = b.spans.get(start=17)
    response = client.post(reverse("review_merge", args=[p.pk]), {"shown": shown, "span": [span.pk], "is_beauty": "true"},
                           follow=True)
    assert "changed since you opened the page" in response.content.decode()
    assert list(Annotation.objects.get(post=p, is_gold=True).spans.values_list("text", flat=True)) == ["SK2"]


@pytest.mark.django_db
def test_an_empty_merge_asks_for_confirmation_before_replacing_the_gold(two_annotations, client_as, make_user):
    p, a, b = two_annotations
    gold_accept(annotation=b, reviewer=make_user("reviewer"))
    client = client_as("reviewer")
    response = client.post(reverse("review_merge", args=[p.pk]), {"shown": _shown_on_page(client, p), "is_beauty": "true"},
                           follow=True)
    assert "No span is ticked" in response.content.decode()
    assert Annotation.objects.get(post=p, is_gold=True).spans.count() == 2  # untouched
    client.post(reverse("review_merge", args=[p.pk]),
                {"shown": _shown_on_page(client, p), "is_beauty": "true", "confirm_empty": "1"})
    gold = Annotation.objects.get(post=p, is_gold=True)
    assert gold.spans.count() == 0 and gold.no_brands


@pytest.mark.django_db
def test_submitted_work_is_read_only_until_reopened(kb, client_as, settings):
    settings.ANNOTATION_DOUBLE_SHARE = 0
    client = client_as("annotator")
    p = f.post(TEXT)
    assert client.get(reverse("queue")).url == reverse("editor", args=[p.pk])
    client.get(reverse("editor", args=[p.pk]))
    client.post(reverse("editor_submit", args=[p.pk]), {"version": 1}, HTTP_HX_REQUEST="true")
    a = Annotation.objects.get(post=p, annotator=client.user)
    assert a.status == Annotation.Status.SUBMITTED
    refused = client.post(reverse("editor_change", args=[p.pk]), {"op": "add", "start": 3, "end": 6, "version": a.version},
                          HTTP_HX_REQUEST="true")
    assert refused.status_code == 422 and "reopen it" in refused.content.decode()
    assert not a.spans.exists()
    page = client.get(reverse("editor", args=[p.pk])).content.decode()
    assert 'id="reopen"' in page
    client.post(reverse("editor_reopen", args=[p.pk]), {"version": a.version}, HTTP_HX_REQUEST="true")
    a.refresh_from_db()
    assert a.status == Annotation.Status.DRAFT and a.submitted_at is None
    ok = client.post(reverse("editor_change", args=[p.pk]), {"op": "add", "start": 3, "end": 6, "version": a.version},
                     HTTP_HX_REQUEST="true")
    assert ok.status_code == 200 and a.spans.get().text == "SK2"
