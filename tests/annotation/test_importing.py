import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import Annotation, ImportBatch, Post, Span
from annotation.services.importing import import_file

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"


def _write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.django_db
def test_gold_seed_imports_its_posts_with_spans_and_a_rerun_changes_nothing(kb, capsys):
    call_command("import_posts", str(DEMO / "gold_seed.jsonl"))
    # 600 lines, 599 distinct texts: two tweet ids carry the same retweeted words (wnut-train-828/-1189),
    # one post to annotate and a repost that counts as volume.
    assert "599 posts created, 1 reposts of a stored text, 0 already present" in capsys.readouterr().out
    assert Post.objects.count() == 599
    assert Annotation.objects.filter(is_gold=True).count() == 599
    gold_mentions = sum(len(json.loads(line)["brands"]) for line in (DEMO / "gold_seed.jsonl").open())
    assert Span.objects.count() == gold_mentions == 577
    # Spans link to the KB where the labeller's brand is in it, and keep the name when it is not.
    assert Span.objects.filter(brand__isnull=False).count() > 250
    assert Span.objects.filter(brand__isnull=True).exclude(brand_text="").exists()
    for span in Span.objects.select_related("annotation__post")[:200]:
        assert span.annotation.post.text[span.start:span.end] == span.text

    call_command("import_brands", str(DEMO / "kb_brands.csv"))
    call_command("import_posts", str(DEMO / "gold_seed.jsonl"))
    assert (Post.objects.count(), Annotation.objects.count(), Span.objects.count()) == (599, 599, 577)
    assert "0 posts created, 0 reposts of a stored text, 600 already present" in capsys.readouterr().out


@pytest.mark.django_db
def test_bad_lines_are_reported_by_number_and_good_lines_land(kb, tmp_path):
    good = {"id": "ok", "platform": "tiktok", "text": "my SK2 essence > la mer tbh"}
    lines = [
        json.dumps(good),
        "{not json",  # 2
        json.dumps({"id": "x", "text": ""}),  # 3: missing text
        json.dumps({**good, "text": "second good 💄 la mer", "brands": [{"start": 14, "end": 20, "text": "la mer"}]}),
        json.dumps({"text": "short", "brands": [{"start": 2, "end": 99, "text": "x"}]}),  # 5: outside the text
        json.dumps({"text": "Dior and Chanel", "brands": [{"start": 0, "end": 4, "text": "Chanel"}]}),  # 6: mismatch
        "",
        json.dumps({"text": "third good post", "posted_at": "2026-04-01T10:00:00Z"}),
    ]
    batch = import_file(path=_write(tmp_path, "mixed.jsonl", lines))
    assert [e["line"] for e in batch.errors] == [2, 3, 5, 6]
    assert "invalid JSON" in batch.errors[0]["error"]
    assert "does not match the offsets" in batch.errors[3]["error"]
    assert (batch.posts_created, batch.error_count, batch.gold_created, batch.status) == (3, 4, 1, "done")
    span = Span.objects.get()
    assert (span.start, span.end, span.text, span.brand.canonical_name) == (14, 20, "la mer", "La Mer")
    assert span.category.slug == "skincare"  # from the KB when the row gives none


@pytest.mark.django_db
def test_emoji_and_cjk_offsets_round_trip(kb, tmp_path):
    text = "👩🏻‍🦰✨ 我爱雅诗兰黛 and #SK2 💯"
    start = text.index("雅诗兰黛")
    row = {"text": text, "is_beauty": True, "brands": [
        {"start": start, "end": start + 4, "text": "雅诗兰黛", "brand": "Estée Lauder", "category": "skincare"},
        {"start": text.index("SK2"), "end": text.index("SK2") + 3, "text": "SK2", "brand": "SK-II"},
    ]}
    import_file(path=_write(tmp_path, "cjk.jsonl", [json.dumps(row, ensure_ascii=False)]))
    post = Post.objects.get()
    assert post.text == text
    spans = list(Span.objects.order_by("start"))
    assert [(post.text[s.start:s.end], s.brand.canonical_name) for s in spans] == [
        ("雅诗兰黛", "Estée Lauder"), ("SK2", "SK-II")]


@pytest.mark.django_db
def test_csv_import_with_optional_columns_and_bad_rows(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text(
        "id,platform,posted_at,author,url,text\n"
        "a1,instagram,2026-04-01T10:00:00Z,@me,https://example.com/p/1,\"multi\nline #lancome post\"\n"
        "a2,instagram,not-a-date,,,dated badly\n"
        "a3,,,,,\n"
        "a4,tiktok,,,,\"my SK2 essence > la mer tbh\"\n",
        encoding="utf-8",
    )
    batch = import_file(path=path)
    assert [(e["line"], e["error"].split(" ")[0]) for e in batch.errors] == [(4, "posted_at"), (5, "missing")]
    assert batch.posts_created == 2
    post = Post.objects.get(external_id="a1")
    assert (post.platform, post.author, post.text) == ("instagram", "@me", "multi\nline #lancome post")
    assert post.posted_at.isoformat() == "2026-04-01T10:00:00+00:00"


@pytest.mark.django_db
def test_csv_without_text_column_is_refused_clearly(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text("id,body\n1,hello\n", encoding="utf-8")
    batch = import_file(path=path)
    assert batch.errors == [{"line": 1, "error": "CSV header must have a 'text' column"}]
    assert Post.objects.count() == 0


@pytest.mark.django_db
def test_one_post_per_text_and_a_repost_per_further_platform_and_id(tmp_path):
    """Same words under ids 1 and 2 (a repost) and again without an id: one post to annotate, one repost
    counted as volume, one duplicate; importing the file again adds nothing."""
    from annotation.models import Repost

    rows = [json.dumps({"id": "1", "platform": "tiktok", "text": "same words"}),
            json.dumps({"id": "2", "platform": "instagram", "text": "same words", "posted_at": "2026-03-01T10:00:00Z"}),
            json.dumps({"text": "same words"})]
    batch = import_file(path=_write(tmp_path, "dupes.jsonl", rows))
    assert (batch.posts_created, batch.reposts_created, batch.posts_duplicate) == (1, 1, 1)
    post = Post.objects.get()
    (repost,) = Repost.objects.all()
    assert (repost.post, repost.platform, repost.external_id, repost.posted_at.day) == (post, "instagram", "2", 1)
    again = import_file(path=_write(tmp_path, "dupes-again.jsonl", rows))
    assert (again.posts_created, again.reposts_created, again.posts_duplicate) == (0, 0, 3)
    assert Post.objects.count() == 1 and Repost.objects.count() == 1


@pytest.mark.django_db
def test_import_command_exits_nonzero_for_missing_file():

    with pytest.raises(CommandError, match="does not exist"):
        call_command("import_posts", "/nonexistent/file.jsonl")


@pytest.mark.django_db
def test_brand_import_is_idempotent_and_reports_bad_rows(tmp_path):
    from kb.models import Brand, BrandAlias
    from kb.services import brands_import_csv

    csv_text = (
        "canonical_name,aliases,alias_origin,category\n"
        "SK-II,SKII|SK2,derived|manual,skincare\n"
        "La Mer,LaMer,derived,skincare\n"
        ",x,,skincare\n"
        "Nope,,,perfumes\n"
        "Other,SK2,manual,skincare\n"
    )
    import io

    first = brands_import_csv(stream=io.StringIO(csv_text))
    assert (first.brands_created, [e["line"] for e in first.errors]) == (3, [4, 5, 6])
    assert "already names 'SK-II'" in first.errors[2]["error"]
    counts = (Brand.objects.count(), BrandAlias.objects.count())
    second = brands_import_csv(stream=io.StringIO(csv_text))
    assert (second.brands_created, second.aliases_created) == (0, 0)
    assert (Brand.objects.count(), BrandAlias.objects.count()) == counts


@pytest.mark.django_db
def test_a_too_deeply_nested_json_line_is_a_row_error(tmp_path):
    lines = [json.dumps({"text": "first"}), "[" * 100_000 + "]" * 100_000, json.dumps({"text": "third"})]
    batch = import_file(path=_write(tmp_path, "deep.jsonl", lines))
    assert (batch.status, batch.posts_created) == ("done", 2)
    assert batch.errors == [{"line": 2, "error": "invalid JSON: nested too deeply"}]


@pytest.mark.django_db
def test_an_impossible_date_is_a_row_error(tmp_path):
    lines = [
        json.dumps({"text": "first", "posted_at": "2024-02-30T10:00:00Z"}),
        json.dumps({"text": "second", "posted_at": "2024-02-30"}),
        json.dumps({"text": "third", "posted_at": "2024-02-29T10:00:00Z"}),
    ]
    batch = import_file(path=_write(tmp_path, "dates.jsonl", lines))
    assert (batch.status, batch.posts_created, [e["line"] for e in batch.errors]) == ("done", 1, [1, 2])
    assert batch.errors[0]["error"] == "posted_at '2024-02-30T10:00:00Z' is not a valid date-time: day is out of range for month"


@pytest.mark.django_db
def test_a_brand_that_is_not_a_string_is_a_row_error(kb, tmp_path):
    def row(text, brand):
        return json.dumps({"text": text, "brands": [{"start": 0, "end": 6, "brand": brand}]})

    lines = [row("la mer one", "La Mer"), row("la mer two", 5), row("la mer six", {"name": "La Mer"}),
             row("la mer ten", None)]
    batch = import_file(path=_write(tmp_path, "brands.jsonl", lines))
    assert (batch.status, [e["line"] for e in batch.errors]) == ("done", [2, 3])
    assert batch.errors[0]["error"] == "brands[0]: brand must be a string"
    assert (batch.posts_created, batch.spans_created) == (2, 2) == (Post.objects.count(), Span.objects.count())


@pytest.mark.django_db
def test_counters_count_only_what_a_failed_batch_really_stored(tmp_path, monkeypatch):
    from annotation.services import importing

    real = importing._store_gold

    def fail_on_the_last_row(batch, post, row, *args):
        real(batch, post, row, *args)
        if row.line == 4:
            raise RuntimeError("database went away")

    monkeypatch.setattr(importing, "CHUNK_ROWS", 2)
    monkeypatch.setattr(importing, "_store_gold", fail_on_the_last_row)
    lines = [json.dumps({"text": f"post {i}", "is_beauty": True}) for i in range(1, 5)]
    batch = import_file(path=_write(tmp_path, "fails.jsonl", lines))
    batch.refresh_from_db()
    assert (batch.status, batch.failure) == ("failed", "RuntimeError: database went away")
    assert (batch.posts_created, batch.gold_created) == (2, 2) == (Post.objects.count(), Annotation.objects.count())


@pytest.mark.django_db
def test_a_csv_row_that_is_not_utf8_is_a_row_error_and_the_rest_land(tmp_path):
    rows = [f"row {i} with some padding to fill the read buffer {'x' * 60}".encode() for i in range(1, 201)]
    rows[149] = b"row 150 caf\xe9 in latin-1"
    path = tmp_path / "posts.csv"
    path.write_bytes(b"text\n" + b"\n".join(rows) + b"\n")
    batch = import_file(path=path)
    assert batch.errors == [{"line": 151, "error": "not UTF-8"}]
    assert (batch.status, batch.posts_created, Post.objects.count()) == ("done", 199, 199)


@pytest.mark.django_db
def test_an_import_whose_worker_died_resumes_after_its_last_stored_chunk(tmp_path, monkeypatch):
    """The batch row and each chunk commit together; a redelivered task reads past what is stored, so
    every row lands exactly once and the counters stay true."""
    from annotation.services import importing
    from annotation.tasks import import_batch_task

    monkeypatch.setattr(importing, "CHUNK_ROWS", 10)
    path = tmp_path / "posts.jsonl"
    lines = [json.dumps({"id": str(i), "platform": "tiktok", "text": f"post number {i} about SK2"}) for i in range(35)]
    lines[24] = "{not json"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    batch = importing.import_batch_create(path=path, filename="posts.jsonl")
    real = importing._store_chunk_counted
    calls = {"n": 0}

    def dies_on_the_third_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # not an Exception: like kill -9, nothing after this runs
        return real(*args, **kwargs)

    monkeypatch.setattr(importing, "_store_chunk_counted", dies_on_the_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        importing.import_batch_run(batch=batch)
    batch.refresh_from_db()
    assert batch.status == "running" and batch.posts_created == Post.objects.count() == 20
    monkeypatch.setattr(importing, "_store_chunk_counted", real)
    assert import_batch_task(batch.pk) == "done"
    batch.refresh_from_db()
    assert Post.objects.count() == 34 and batch.posts_created == 34 and batch.posts_duplicate == 0
    assert batch.error_count == 1 and batch.errors[0]["line"] == 25
    assert import_batch_task(batch.pk) == "skipped"  # done: a late redelivery changes nothing

def _import_overlong_span_and_brand_texts(tmp_path):
    long_text = "b" * (Span._meta.get_field("text").max_length + 1)
    long_brand = "n" * (Span._meta.get_field("brand_text").max_length + 1)
    lines = [
        json.dumps({"text": long_text, "brands": [{"start": 0, "end": len(long_text)}]}),
        json.dumps({"text": "brand name too long", "brands": [{"start": 0, "end": 5, "brand": long_brand}]}),
        json.dumps({"text": "fits", "brands": [{"start": 0, "end": 4, "brand": "Fits"}]}),
    ]
    batch = import_file(path=_write(tmp_path, "long.jsonl", lines))
    assert batch.errors == [
        {"line": 1, "error": "brands[0]: text is 501 characters, longer than the 500 a span holds"},
        {"line": 2, "error": "brands[0]: brand is 201 characters, longer than the 200 a brand name holds"},
    ]
    assert (batch.status, batch.posts_created, batch.spans_created, Span.objects.get().brand_text) == (
        "done", 1, 1, "Fits")


@pytest.mark.django_db
def test_span_and_brand_texts_longer_than_their_columns_are_row_errors(tmp_path):
    _import_overlong_span_and_brand_texts(tmp_path)


@pytest.mark.pg
@pytest.mark.django_db
def test_overlong_span_and_brand_texts_are_row_errors_on_postgresql(tmp_path):
    from django.db import connection

    assert connection.vendor == "postgresql"  # which refuses an overlong value, where SQLite stores it
    _import_overlong_span_and_brand_texts(tmp_path)


@pytest.mark.django_db
def test_a_csv_field_over_the_csv_limit_is_a_row_error_and_the_rows_after_it_land(tmp_path):
    import csv as csv_module

    huge = "x" * (csv_module.field_size_limit() + 10)
    path = tmp_path / "huge.csv"
    path.write_text(f"text\nfirst SK2 post\n\"{huge}\"\nafter the huge one\nand one more\n", encoding="utf-8")
    batch = import_file(path=path)
    assert batch.status == "done" and batch.error_count == 1
    assert batch.errors[0]["line"] == 3 and "unreadable CSV row" in batch.errors[0]["error"]
    assert sorted(Post.objects.values_list("text", flat=True)) == ["after the huge one", "and one more",
                                                                   "first SK2 post"]


@pytest.mark.django_db
@pytest.mark.parametrize("bad, why", [
    (r'"a NUL \u0000 inside"', "text contains a NUL character"),
    (r'"a lone \ud800 surrogate"', "text is not valid Unicode (a lone surrogate)"),
])
def test_a_nul_or_a_lone_surrogate_in_jsonl_is_a_row_error_and_the_rest_land(tmp_path, bad, why):
    lines = ['{"text": "good SK2 post"}', '{"text": %s}' % bad, '{"text": "fine", "author": "a\\u0000b"}',
             '{"text": "also good"}']
    batch = import_file(path=_write(tmp_path, "nul.jsonl", lines))
    assert batch.errors == [{"line": 2, "error": why}, {"line": 3, "error": "author contains a NUL character"}]
    assert (batch.status, batch.posts_created) == ("done", 2)


@pytest.mark.django_db
def test_a_nul_in_a_csv_cell_is_a_row_error(tmp_path):
    path = tmp_path / "nul.csv"
    path.write_bytes(b"text,author\nfine,me\nbad\x00text,me\nalso fine,me\n")
    batch = import_file(path=path)
    assert batch.errors == [{"line": 3, "error": "text contains a NUL character"}]
    assert (batch.status, batch.posts_created) == ("done", 2)


@pytest.mark.django_db
def test_import_brands_refuses_a_file_that_is_not_utf8_and_imports_nothing(tmp_path):
    from kb.models import Brand

    path = tmp_path / "kb.csv"
    path.write_bytes(b"canonical_name,category\nGood Brand,skincare\nBad \xff Brand,makeup\n")
    with pytest.raises(CommandError, match="line 3 is not UTF-8"):
        call_command("import_brands", str(path))
    assert not Brand.objects.exists()
