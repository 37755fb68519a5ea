import pytest

from kb.gazetteer import Gazetteer
from kb.index import get_index
from kb.linking import BrandEntry, BrandIndex, normalize
from kb.models import Brand
from kb.services import AliasConflict, brand_alias_add


def test_normalize_folds_case_accents_punctuation_and_marks():
    assert normalize("L’Oréal Paris") == "lorealparis"
    assert normalize("#SK-II") == normalize("@sk_ii") == normalize("SK II") == "skii"
    assert normalize("ＳＫ２") == "sk2"  # full-width forms fold by NFKC
    assert normalize("雅诗兰黛") == "雅诗兰黛"
    assert normalize("!!!") == ""


def _index():
    entries = {
        "skii": BrandEntry(1, "SK-II", "skincare", False),
        "sk2": BrandEntry(1, "SK-II", "skincare", False),
        "lamer": BrandEntry(2, "La Mer", "skincare", False),
        "fresh": BrandEntry(3, "Fresh", "skincare", True),
        "mac": BrandEntry(4, "MAC", "makeup", False),
        "maybelline": BrandEntry(5, "Maybelline", "makeup", False),
        "kiehls": BrandEntry(6, "Kiehl's", "skincare", False),
        "雅诗兰黛": BrandEntry(7, "Estée Lauder", "skincare", False),
        "esteelauder": BrandEntry(7, "Estée Lauder", "skincare", False),
    }
    return BrandIndex(entries)


def test_resolve_exact_alias_then_variants_then_fuzzy():
    index = _index()
    assert index.resolve("SK2").brand.canonical_name == "SK-II"
    assert index.resolve("sk-ii").method == "exact"
    assert index.resolve("@maccosmetics").brand.canonical_name == "MAC"  # handle with a brand suffix
    assert index.resolve("La Mer's").brand.canonical_name == "La Mer"  # grammatical possessive
    fuzzy = index.resolve("maybeline")
    assert (fuzzy.brand.canonical_name, fuzzy.method) == ("Maybelline", "fuzzy")
    assert index.resolve("maybeline", fuzzy=False).brand is None
    assert index.resolve("Nivea").brand is None  # not in the KB: stays unlinked


def test_short_names_never_match_fuzzily():
    assert _index().resolve("MAK").brand is None  # 'mac' is too short to be guessed at


def test_ambiguous_brand_needs_evidence():
    index = _index()
    assert index.resolve("fresh", context="fresh air this morning").method == "ambiguous"
    assert index.resolve("Fresh", context="Fresh soy face cleanser is my favourite").brand.canonical_name == "Fresh"
    assert index.resolve("fresh", hint="Fresh").brand.canonical_name == "Fresh"  # someone named the brand
    assert index.resolve("Fresh", context="Fresh start at the gym").brand is None


def test_gazetteer_token_boundaries_hashtags_possessives_and_cjk():
    g = Gazetteer(_index())
    text = "my SK2 essence > la mer tbh #esteelauder @Kiehls, Kiehl's and La Mer's cream; smackdown 我爱雅诗兰黛"
    found = [(m.text, m.brand.canonical_name) for m in g.find(text)]
    assert found == [
        ("SK2", "SK-II"), ("la mer", "La Mer"), ("esteelauder", "Estée Lauder"), ("Kiehls", "Kiehl's"),
        ("Kiehl's", "Kiehl's"), ("La Mer", "La Mer"), ("雅诗兰黛", "Estée Lauder"),
    ]
    for m in g.find(text):
        assert text[m.start:m.end] == m.text
    assert g.find("smackdown is not mac") == [g.find("smackdown is not mac")[0]]  # only the word 'mac'
    assert g.find("smackdown")[:1] == []


@pytest.mark.django_db
def test_alias_naming_two_brands_is_refused(kb):
    sk2 = Brand.objects.get(canonical_name="SK-II")
    other = Brand.objects.exclude(pk=sk2.pk).first()
    brand_alias_add(brand=sk2, alias="SK2")
    assert brand_alias_add(brand=sk2, alias="sk 2")[1] is False  # same normalised form, same brand: no-op
    with pytest.raises(AliasConflict, match="already names 'SK-II'"):
        brand_alias_add(brand=other, alias="S.K.2")


@pytest.mark.django_db
def test_index_rebuilds_after_a_kb_change(kb, django_capture_on_commit_callbacks):
    assert get_index().resolve("SKtwo").brand is None
    with django_capture_on_commit_callbacks(execute=True):
        brand_alias_add(brand=Brand.objects.get(canonical_name="SK-II"), alias="SKtwo")
    assert get_index().resolve("SKtwo").brand.canonical_name == "SK-II"


@pytest.mark.django_db
def test_brand_csv_with_an_overlong_value_reports_the_line():
    import io

    from kb.services import brands_import_csv

    result = brands_import_csv(stream=io.StringIO(
        "canonical_name,aliases,category,country\nGood,,makeup,\nBad,,makeup," + "x" * 65 + "\n"))
    assert result.brands_created == 1
    assert result.errors == [{"line": 3, "error": "value too long in country"}]


@pytest.mark.pg
@pytest.mark.django_db
def test_the_real_kb_imports_on_postgresql(kb):
    from django.db import connection

    assert connection.vendor == "postgresql"
    assert Brand.objects.count() == 529
    assert get_index().resolve("雅诗兰黛").brand.canonical_name == "Estée Lauder"
