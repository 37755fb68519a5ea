"""The student's lexicon: brand forms learnt from training labels (teacher silver + gold) beside the KB."""

from __future__ import annotations

from kb.gazetteer import Gazetteer
from modeling.student.kbsnap import index_from_rows, rows_from_index
from modeling.student.lexicon import extend_index, is_mined, lexicon_summary, mine_lexicon, unreliable_kb_keys
from modeling.student.text import Example

from .student_factories import labelled, tiny_index


def _silver(text: str, *forms: tuple[str, str, str], is_beauty: bool = True) -> Example:
    ex = labelled(text, *forms, is_beauty=is_beauty)
    ex.kind, ex.weight = "silver", 0.7
    return ex


def _training_set() -> list[Example]:
    return [
        _silver("the @cerave cleanser is so gentle 🧴", ("cerave", "CeraVe", "skincare")),
        _silver("CeraVe PM lotion every night", ("CeraVe", "CeraVe", "skincare")),
        _silver("Cetaphil or cerave for dry skin?", ("Cetaphil", "Cetaphil", "skincare"), ("cerave", "CeraVe", "skincare")),
        # The teacher tagged "Directions" once; the word is used plainly in the other texts.
        _silver("Directions hair dye in lagoon blue", ("Directions", "Directions", "haircare")),
        _silver("follow the directions on the box", is_beauty=True),
        _silver("no directions came with it", is_beauty=False),
        _silver("directions to the mall please", is_beauty=False),
        # A new written form of a KB brand: it joins that brand, not a new one.
        _silver("clinque moisture surge is my fave", ("clinque", "CLINIQUE", "skincare")),
        # Forms the KB knows are not candidates.
        _silver("I love my SK2 essence", ("SK2", "SK-II", "skincare")),
    ]


def test_mined_forms_are_the_labelled_brands_the_kb_lacks_and_plain_words_stay_out():
    index = tiny_index()
    lexicon = {e.key: e for e in mine_lexicon(_training_set(), index)}
    assert set(lexicon) == {"cerave", "cetaphil", "clinque"}
    assert lexicon["cerave"].labelled == 3 and lexicon["cerave"].matches == 3
    assert lexicon["clinque"].brand == "CLINIQUE" and lexicon["clinque"].in_kb
    assert not lexicon["cerave"].in_kb and lexicon["cerave"].category == "skincare"
    # "Directions": 1 of 4 matches labelled, below the 0.3 bar; at 0.2 it would pass.
    assert "directions" in {e.key for e in mine_lexicon(_training_set(), index, min_precision=0.2)}


def test_extended_index_matches_new_brands_in_social_writing_and_keeps_kb_links():
    index = tiny_index()
    extended = extend_index(index, mine_lexicon(_training_set(), index))
    found = {m.text: m.brand for m in Gazetteer(extended).find("#cerave haul + clinque + SK2 ✨")}
    assert set(found) == {"cerave", "clinque", "SK2"}
    assert is_mined(found["cerave"]) and found["cerave"].canonical_name == "CeraVe"
    assert found["clinque"] is index.by_key["clinique"] and found["SK2"] is index.by_key["sk2"]
    assert extended.by_key["cerave"] is extended.by_key["cerave"]  # one entry per mined brand
    assert len(extended.by_key) == len(index.by_key) + 3  # cerave, cetaphil, clinque
    summary = lexicon_summary(mine_lexicon(_training_set(), index))
    assert summary["forms"] == 3 and summary["new_brands"] == 2 and summary["top_new_brands"][0] == "CeraVe"


def test_kb_aliases_the_training_texts_use_as_plain_words_need_evidence_in_the_students_index():
    rows = [{"canonical_name": "Palette", "category": "haircare", "aliases": [], "is_ambiguous": False},
            {"canonical_name": "Fresh", "category": "skincare", "aliases": ["Fresh Beauty"], "is_ambiguous": False},
            {"canonical_name": "NARS", "category": "makeup", "aliases": [], "is_ambiguous": False}]
    index = index_from_rows(rows)
    texts = [_silver("this palette is stunning", is_beauty=True), _silver("new palette from NARS", ("NARS", "NARS", "makeup")),
             _silver("fresh air today", is_beauty=False), _silver("so fresh and so clean", is_beauty=False),
             _silver("Fresh Beauty sugar lip", ("Fresh Beauty", "Fresh", "skincare"))]
    dropped = unreliable_kb_keys(texts, index)
    assert dropped == ["fresh", "palette"]  # NARS: 1 of 1 labelled; "Fresh Beauty": 1 of 1
    student = extend_index(index, [], dropped)
    assert student.evidence_keys == {"fresh", "palette"} and student.by_key["freshbeauty"].canonical_name == "Fresh"
    gazetteer = Gazetteer(student)
    # Plain words stay plain; written as a name in beauty context, the KB brand is found again.
    assert gazetteer.find("so fresh and so clean") == [] and gazetteer.find("this palette is stunning") == []
    assert [m.text for m in gazetteer.find("the Fresh sugar lip treatment is my fave")] == ["Fresh"]
    assert [m.text for m in Gazetteer(student).find("new palette from NARS")] == ["NARS"]
    # The artifact's snapshot keeps the evidence rule on reload.
    reloaded = index_from_rows(rows_from_index(student))
    assert set(reloaded.by_key) == set(student.by_key) == {"freshbeauty", "nars", "fresh", "palette"}
    assert reloaded.evidence_keys == student.evidence_keys
