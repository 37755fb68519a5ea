"""The gazetteer's matching rules (kb/gazetteer.py), on a small KB."""

import pytest

from kb.gazetteer import Gazetteer
from kb.linking import BrandEntry, BrandIndex, normalize


def index(*brands):
    entries = {}
    for i, (name, aliases, ambiguous) in enumerate(brands, start=1):
        entry = BrandEntry(i, name, "makeup", ambiguous)
        for alias in (name, *aliases):
            entries[normalize(alias)] = entry
    return BrandIndex(entries)


GAZ = Gazetteer(index(
    ("NYX", ["NYX Professional Makeup"], False), ("Too Faced", [], False), ("MAC", ["maccosmetics"], False),
    ("Kiehl's", [], False), ("Clinique", [], False), ("Urban Decay", ["UD"], False), ("Fresh", [], True),
    ("Fenty Beauty", ["Fenty"], False),
))


def found(text):
    return [(m.text, m.brand.canonical_name) for m in GAZ.find(text)]


@pytest.mark.parametrize("text, expected", [
    ("machine learning is not MAC", [("MAC", "MAC")]),  # word boundaries
    ("love #UD and @maccosmetics", [("UD", "Urban Decay"), ("maccosmetics", "MAC")]),  # hashtags, handles
    ("Clinique's toner, Kiehl's cream", [("Clinique", "Clinique"), ("Kiehl's", "Kiehl's")]),  # possessives
    ("NYX Professional Makeup liner", [("NYX Professional Makeup", "NYX")]),  # longest match first
    ("NYX cosmetics and Too Faced Cosmetics", [("NYX cosmetics", "NYX"), ("Too Faced Cosmetics", "Too Faced")]),
    ("Fenty Beauty gloss", [("Fenty Beauty", "Fenty Beauty")]),
    ("Clinique beauty tips, Clinique Beauty counter", [("Clinique", "Clinique"), ("Clinique Beauty", "Clinique")]),
    ("feeling fresh today", []),  # ambiguous brand without evidence
])
def test_rules(text, expected):
    assert found(text) == expected
