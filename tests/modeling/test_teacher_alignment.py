import pytest

from modeling.teacher.align import AlignmentError, align_mentions


def spans(text, mentions, brands=None):
    return [(a.start, a.end, a.text) for a in align_mentions(text, mentions, brands)]


def test_hashtags_handles_case_and_accents():
    text = "Loving #OPI and @maccosmetics, plus L'ORÉAL and loreal... no, L’Oréal"
    assert spans(text, ["#OPI", "maccosmetics", "L'Oreal", "L'Oreal"]) == [
        (8, 11, "OPI"), (17, 29, "maccosmetics"), (36, 43, "L'ORÉAL"), (62, 69, "L’Oréal")]


def test_kth_mention_takes_kth_occurrence_and_skips_words_inside_words():
    text = "MAC machine MAC! mac"
    assert spans(text, ["MAC", "MAC", "mac"]) == [(0, 3, "MAC"), (12, 15, "MAC"), (17, 20, "mac")]


def test_earlier_unlabelled_occurrence_does_not_steal_the_label():
    # A brand inside a URL before the labelled ones (the teacher lists mentions in reading order).
    text = "see http://acne.org/x. Proactiv, then Cetaphil, then Acne.org"
    assert spans(text, ["Proactiv", "Cetaphil", "Acne.org"])[-1] == (53, 61, "Acne.org")


def test_grammatical_possessive_is_cut_but_a_possessive_name_stays():
    text = "Clinique's toner and Kiehl's cream"
    assert spans(text, ["Clinique's", "Kiehl's"], ["Clinique", "Kiehl's"]) == [(0, 8, "Clinique"), (21, 28, "Kiehl's")]


@pytest.mark.parametrize("mentions", [["Glossier"], ["OPI", "OPI"], [""]])
def test_unalignable_mentions_raise(mentions):
    with pytest.raises(AlignmentError):
        align_mentions("one OPI bottle", mentions)


def test_every_stored_teacher_answer_aligns():
    """The demo's replayed answers must all be usable labels, or `make run` would show invalid ones."""
    import json

    from tests.conftest import DEMO

    texts = {}
    with (DEMO / "posts_unlabelled.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            texts[row["id"]] = row["text"]
    with (DEMO / "teacher_answers.jsonl").open(encoding="utf-8") as f:
        answers = [json.loads(line) for line in f]
    aligned = 0
    for answer in answers:
        if answer["mentions"]:
            align_mentions(texts[answer["id"]], [m["text"] for m in answer["mentions"]])
            aligned += 1
    assert aligned > 300
