"""KB growth from the teacher: forms it writes for known brands under names the KB lacks are proposed
as aliases; accepted, the dictionary finds them; rejected, they are not proposed again."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.models import Prediction
from annotation.selectors import alias_candidates
from kb.index import get_index
from kb.models import AliasRejection, Brand, BrandAlias
from modeling.predictors import GazetteerPredictor
from tests.annotation import editor_factories as f

pytestmark = pytest.mark.django_db


def teacher_says(text: str, mentions: list[tuple[str, str]]) -> None:
    post = f.post(text)
    spans = []
    for form, brand in mentions:
        start = text.index(form)
        spans.append({"start": start, "end": start + len(form), "text": form, "brand": brand, "brand_id": None,
                      "category": "skincare"})
    Prediction.objects.create(post=post, source="teacher", model_version="gemini-2.5-flash", spans=spans)


@pytest.fixture
def proposals(db):
    f.mini_kb()
    teacher_says("兰蔻小黑瓶真的好用", [("兰蔻", "Lancôme")])
    teacher_says("回购兰蔻粉水", [("兰蔻", "Lancôme")])
    teacher_says("my SK2 essence and lamer cream", [("SK2", "SK-II"), ("lamer", "La Mer")])
    teacher_says("new drop from Rhode today", [("Rhode", "Rhode")])  # a brand the KB lacks: a brand candidate, not an alias


def test_forms_the_kb_lacks_for_known_brands_are_proposed_most_mentioned_first(proposals):
    found = alias_candidates()
    assert [(c["name"], c["brand"], c["count"], c["posts"]) for c in found] == [("兰蔻", "Lancôme", 2, 2)]
    # "SK2" and "LaMer"/"lamer" are aliases already; Rhode is no KB brand.


def test_an_accepted_alias_is_found_by_the_gazetteer(proposals, client_as):
    client = client_as("admin")
    page = client.get(reverse("kb_candidates")).content.decode()
    assert "Alias candidates from the teacher" in page and "兰蔻" in page
    lancome = Brand.objects.get(canonical_name="Lancôme")
    response = client.post(reverse("kb_alias_candidate"), {"name": "兰蔻", "brand_id": lancome.pk, "action": "accept"},
                           follow=True)
    assert "is now an alias of Lancôme" in response.content.decode()
    assert BrandAlias.objects.get(alias="兰蔻").brand == lancome
    from kb.index import bump_index_version

    bump_index_version()  # the test's transaction never commits, so the on_commit bump does not run
    spans = GazetteerPredictor(get_index()).predict(["今天买了兰蔻的精华"])[0]["brands"]
    assert [(s["text"], s["brand"]) for s in spans] == [("兰蔻", "Lancôme")]
    assert alias_candidates() == []


def test_a_rejected_pair_is_not_proposed_again_and_bad_posts_are_refused(proposals, client_as):
    client = client_as("admin")
    lancome = Brand.objects.get(canonical_name="Lancôme")
    client.post(reverse("kb_alias_candidate"), {"name": "兰蔻", "brand_id": lancome.pk, "action": "reject"})
    assert AliasRejection.objects.filter(brand=lancome, normalized="兰蔻").exists()
    assert alias_candidates() == [] and not BrandAlias.objects.filter(alias="兰蔻").exists()
    response = client.post(reverse("kb_alias_candidate"), {"name": "x", "brand_id": "abc", "action": "accept"}, follow=True)
    assert "no longer valid" in response.content.decode()
    assert client_as("annotator").post(reverse("kb_alias_candidate"), {"name": "兰蔻", "brand_id": lancome.pk,
                                                                       "action": "accept"}).status_code == 403
