import pytest
from django.urls import reverse

from annotation.models import Annotation, Assignment, Span
from annotation.services.editor import (
    EditConflict, EditError, annotation_change, annotation_for_editing, annotation_submit, annotation_undo,
)
from annotation.services.queue import queue_next
from annotation.tokens import tokenize
from kb.models import Brand, Category
from tests.annotation import editor_factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def kb(db):
    f.mini_kb()


@pytest.fixture
def draft(kb, make_user):
    user = make_user("annotator")
    p = f.post("my SK2 essence > la mer tbh")
    return annotation_for_editing(user=user, post=p)


def test_tokens_cover_the_text_with_code_point_offsets():
    text = "💅🏽 Lancôme e\u0301clat 資生堂 👩‍👩‍👧 #fentybeauty"
    tokens = tokenize(text)
    assert "".join(t.text for t in tokens) == text
    assert all(text[t.start:t.end] == t.text for t in tokens)
    words = [t.text for t in tokens if t.kind != "space"]
    assert words == ["💅🏽", "Lancôme", "e\u0301clat", "資", "生", "堂", "👩‍👩‍👧", "#", "fentybeauty"]


def test_add_links_the_brand_and_its_category(draft):
    applied = annotation_change(annotation=draft, version=1, op={"op": "add", "start": 3, "end": 6})
    span = Span.objects.get(annotation=draft)
    assert (span.text, span.brand.canonical_name, span.category.slug) == ("SK2", "SK-II", "skincare")
    assert applied.annotation.version == 2
    assert Annotation.objects.get(pk=draft.pk).version == 2


def test_add_trims_spaces_and_refuses_overlaps_and_bad_offsets(draft):
    annotation_change(annotation=draft, version=1, op={"op": "add", "start": 2, "end": 7})
    assert Span.objects.get(annotation=draft).text == "SK2"
    with pytest.raises(EditError, match="overlaps"):
        annotation_change(annotation=draft, version=2, op={"op": "add", "start": 3, "end": 14})
    with pytest.raises(EditError, match="inside the text"):
        annotation_change(annotation=draft, version=2, op={"op": "add", "start": 20, "end": 99})
    assert Annotation.objects.get(pk=draft.pk).version == 2  # a refused change does not move the version


def test_a_stale_version_is_a_conflict_and_changes_nothing(draft):
    annotation_change(annotation=draft, version=1, op={"op": "add", "start": 3, "end": 6})
    stale = Annotation.objects.get(pk=draft.pk)
    stale.version = 1  # what a second tab still believes
    with pytest.raises(EditConflict) as exc:
        annotation_change(annotation=stale, version=1, op={"op": "delete", "start": 3, "end": 6})
    assert exc.value.annotation.version == 2
    assert Span.objects.filter(annotation=draft).count() == 1


def test_a_concurrent_write_between_read_and_update_is_a_conflict(draft):
    # Two requests read version 1; the first one wins, the second must not write.
    other = Annotation.objects.get(pk=draft.pk)
    annotation_change(annotation=draft, version=1, op={"op": "add", "start": 3, "end": 6})
    with pytest.raises(EditConflict):
        annotation_change(annotation=other, version=1, op={"op": "add", "start": 17, "end": 23})
    assert list(Span.objects.filter(annotation=draft).values_list("text", flat=True)) == ["SK2"]


def test_update_category_and_brand_then_undo_each(draft):
    annotation_change(annotation=draft, version=1, op={"op": "add", "start": 17, "end": 23})
    la_mer = Brand.objects.get(canonical_name="La Mer")
    makeup = Category.objects.get(slug="makeup")
    annotation_change(annotation=draft, version=2, op={"op": "update", "start": 17, "end": 23, "category_id": makeup.pk})
    annotation_change(annotation=draft, version=3, op={"op": "update", "start": 17, "end": 23, "brand_id": "", "brand_text": "Lamer Co"})
    span = Span.objects.get(annotation=draft)
    assert (span.brand_id, span.brand_text, span.category_id) == (None, "Lamer Co", makeup.pk)
    annotation_undo(annotation=draft, version=4)
    span.refresh_from_db()
    assert (span.brand_id, span.category_id) == (la_mer.pk, makeup.pk)
    annotation_undo(annotation=draft, version=5)
    span.refresh_from_db()
    assert span.category.slug == "skincare"
    annotation_undo(annotation=draft, version=6)
    assert not Span.objects.filter(annotation=draft).exists()
    with pytest.raises(EditError, match="Nothing to undo"):
        annotation_undo(annotation=draft, version=7)


def test_undo_of_a_delete_restores_the_span_as_it_was(draft):
    annotation_change(annotation=draft, version=1, op={"op": "add", "start": 3, "end": 6})
    annotation_change(annotation=draft, version=2, op={"op": "update", "start": 3, "end": 6, "brand_id": "", "brand_text": "Sk2 Lab"})
    annotation_change(annotation=draft, version=3, op={"op": "delete", "start": 3, "end": 6})
    annotation_undo(annotation=draft, version=4)
    span = Span.objects.get(annotation=draft)
    assert (span.brand_id, span.brand_text, span.category.slug) == (None, "Sk2 Lab", "skincare")


def test_accept_reject_and_accept_all_suggestions(draft):
    post = draft.post
    sk2 = Brand.objects.get(canonical_name="SK-II")
    f.prediction(post, "teacher", [{"start": 3, "end": 6, "text": "SK2", "brand": "SK-II", "brand_id": sk2.pk, "category": "skincare"},
                                   {"start": 17, "end": 23, "text": "la mer", "brand": "La Mer", "brand_id": None, "category": "skincare"}],
                 model_version="gemini-2.5-flash")
    f.prediction(post, "gazetteer", [(3, 6), (20, 23)], model_version="kb-1")
    annotation_change(annotation=draft, version=1, op={"op": "accept", "source": "gazetteer", "start": 20, "end": 23})
    annotation_change(annotation=draft, version=2, op={"op": "dismiss", "key": "gazetteer:3:6"})
    # Accept all from the teacher replaces the overlapping gazetteer span with the teacher's.
    applied = annotation_change(annotation=draft, version=3, op={"op": "accept_all", "source": "teacher"})
    assert "2 suggestions" in applied.message
    spans = list(Span.objects.filter(annotation=draft).order_by("start"))
    assert [(s.start, s.end, s.suggested_by) for s in spans] == [(3, 6, "teacher:gemini-2.5-flash"), (17, 23, "teacher:gemini-2.5-flash")]
    assert spans[1].brand.canonical_name == "La Mer"  # linked from the teacher's canonical name
    annotation_undo(annotation=draft, version=4)
    assert [(s.start, s.end) for s in Span.objects.filter(annotation=draft)] == [(20, 23)]
    assert Annotation.objects.get(pk=draft.pk).dismissed == ["gazetteer:3:6"]


def test_submit_counts_suggestions_kept_unchanged_and_completes_the_assignment(draft, settings):
    settings.ANNOTATION_DOUBLE_SHARE = 0
    post = draft.post
    sk2 = Brand.objects.get(canonical_name="SK-II")
    Assignment.objects.create(post=post, annotator=draft.annotator, expires_at="2100-01-01T00:00Z")
    f.prediction(post, "teacher", [{"start": 3, "end": 6, "text": "SK2", "brand": "SK-II", "brand_id": sk2.pk, "category": "skincare"},
                                   {"start": 17, "end": 23, "text": "la mer", "brand": "La Mer", "brand_id": None, "category": "skincare"}])
    annotation_change(annotation=draft, version=1, op={"op": "accept_all", "source": "teacher"})
    annotation_change(annotation=draft, version=2, op={"op": "update", "start": 17, "end": 23, "category": "makeup"})
    submitted = annotation_submit(annotation=draft, version=3, active_seconds=12.5)
    fresh = Annotation.objects.get(pk=draft.pk)
    assert fresh.status == Annotation.Status.SUBMITTED and fresh.submitted_at is not None
    assert fresh.suggestions_accepted == 1  # la mer's category was changed
    assert fresh.is_beauty is True and fresh.active_seconds == pytest.approx(12.5)
    assert Assignment.objects.get(post=post, annotator=draft.annotator).completed_at is not None
    assert submitted.version == 4


def test_no_brands_flag_conflicts_with_spans(draft):
    annotation_change(annotation=draft, version=1, op={"op": "add", "start": 3, "end": 6})
    with pytest.raises(EditError, match="Delete the spans"):
        annotation_change(annotation=draft, version=2, op={"op": "flag", "no_brands": "true"})
    annotation_change(annotation=draft, version=2, op={"op": "flag", "is_beauty": "false"})
    assert Annotation.objects.get(pk=draft.pk).is_beauty is False


# --- through the views ------------------------------------------------------------------------

def test_editor_change_view_saves_emoji_offsets_in_code_points(kb, client_as, settings):
    settings.ANNOTATION_DOUBLE_SHARE = 0
    client = client_as("annotator")
    text = "💄💋 obsessed w my 資生堂 & SK2 🫶🏽"
    p = f.post(text)
    assert client.get(reverse("queue")).url == reverse("editor", args=[p.pk])
    page = client.get(reverse("editor", args=[p.pk])).content.decode()
    start = text.index("SK2")
    assert f'data-start="{start}" data-end="{start + 3}">SK2<' in page
    response = client.post(reverse("editor_change", args=[p.pk]), {"op": "add", "start": start, "end": start + 3, "version": 1},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    span = Span.objects.get(annotation__post=p)
    assert (span.start, span.end, span.text) == (start, start + 3, "SK2") and text[span.start:span.end] == "SK2"
    assert span.brand.canonical_name == "SK-II"


def test_editor_change_view_answers_a_stale_tab_with_409_and_the_fresh_state(kb, client_as, settings):
    settings.ANNOTATION_DOUBLE_SHARE = 0
    client = client_as("annotator")
    p = f.post("my SK2 essence > la mer tbh")
    client.get(reverse("queue"))
    url = reverse("editor_change", args=[p.pk])
    assert client.post(url, {"op": "add", "start": 3, "end": 6, "version": 1}).status_code == 200
    stale = client.post(url, {"op": "add", "start": 17, "end": 23, "version": 1})
    assert stale.status_code == 409
    body = stale.content.decode()
    assert "changed in another tab" in body and "mark “la mer” as a brand" in body
    assert 'value="2"' in body  # the fresh version, so re-applying works
    assert "Re-apply my change" in body
    assert client.post(url, {"op": "add", "start": 17, "end": 23, "version": 2}).status_code == 200
    assert Span.objects.filter(annotation__post=p).count() == 2


def test_annotators_cannot_open_posts_not_assigned_to_them_nor_see_others_work(kb, make_user, client, settings):
    settings.ANNOTATION_DOUBLE_SHARE = 1.0
    p = f.post("my SK2 essence > la mer tbh")
    first, second = make_user("annotator"), make_user("annotator")
    assert queue_next(user=first).pk == p.pk
    a = annotation_for_editing(user=first, post=p)
    annotation_change(annotation=a, version=1, op={"op": "add", "start": 3, "end": 6})
    stranger = make_user("annotator")
    client.force_login(stranger)
    assert client.get(reverse("editor", args=[p.pk])).status_code == 403
    client.force_login(second)
    assert client.get(reverse("queue")).url == reverse("editor", args=[p.pk])
    page = client.get(reverse("editor", args=[p.pk])).content.decode()
    assert "data-span" not in page  # the first annotator's span is not shown


def test_brand_autocomplete_finds_aliases_by_prefix_and_contains(kb, client_as):
    client = client_as("annotator")
    body = client.get(reverse("brand_autocomplete"), {"q": "sk2"}).content.decode()
    assert "SK-II" in body
    body = client.get(reverse("brand_autocomplete"), {"q": "mer"}).content.decode()
    assert "La Mer" in body
    assert "Keep “mer” as a new brand" in body


@pytest.mark.parametrize("n_spans", [1, 4])
def test_a_save_runs_constant_queries_and_answers_the_span_list(kb, client_as, settings, django_assert_num_queries, n_spans):
    settings.ANNOTATION_DOUBLE_SHARE = 0
    client = client_as("annotator")
    text = "my SK2 essence > la mer tbh, Fenty & Glossier"
    p = f.post(text)
    client.get(reverse("queue"))
    url = reverse("editor_change", args=[p.pk])
    words = ["SK2", "la mer", "Fenty", "Glossier"][:n_spans]
    for version, word in enumerate(words, 1):  # the first save also builds the KB index and reads the categories
        start = text.index(word)
        assert client.post(url, {"op": "add", "start": start, "end": start + len(word), "version": version}).status_code == 200
    makeup = Category.objects.get(slug="makeup")
    start = text.index("SK2")
    # Session, user, roles; the annotation with its post text; the spans; the span and the annotation
    # written, between the savepoint and its release (a transaction outside tests).
    with django_assert_num_queries(9):
        response = client.post(url, {"op": "update", "start": start, "end": start + 3, "category_id": makeup.pk,
                                      "version": n_spans + 1}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["HX-Retarget"] == "#spans-section"
    body = response.content.decode()
    assert body.count("data-span ") == n_spans and f'value="{n_spans + 2}"' in body
    assert 'class="cat on" data-cat="2"' in body and "SK-II" in body  # makeup is the second category
    assert Span.objects.get(annotation__post=p, start=start).category_id == makeup.pk


def test_the_editor_sees_a_category_change_once_it_commits(draft, django_capture_on_commit_callbacks):
    applied = annotation_change(annotation=draft, version=1, op={"op": "add", "start": 3, "end": 6})
    skincare = next(c for c in applied.categories if c.slug == "skincare")
    assert skincare.name == "Skincare"
    renamed = Category.objects.get(pk=skincare.pk)
    renamed.name = "Skin care"
    with django_capture_on_commit_callbacks(execute=True):  # as the admin saves it
        renamed.save()
    applied = annotation_change(annotation=draft, version=2, op={"op": "update", "start": 3, "end": 6, "category": "skincare"})
    assert next(c for c in applied.categories if c.slug == "skincare").name == "Skin care"
    assert applied.spans[0].category.name == "Skin care"
