import hashlib
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from annotation.datasets import EXPORT_FILES, content_hash, read_jsonl, read_manifest, split_for, version_sha256
from annotation.datasets.interchange import verify_directory
from annotation.models import Annotation, DatasetItem, DatasetVersion, DatasetVersionFrozen, Post, Prediction, Span
from annotation.selectors_datasets import dataset_diff, dataset_export_lines
from annotation.services.datasets import (
    FreezeInProgress,
    NothingToFreeze,
    dataset_freeze_now,
    dataset_version_create,
    dataset_version_export,
    dataset_version_export_dir,
    dataset_version_freeze,
)
from annotation.services.importing import content_hash as import_content_hash
from annotation.services.importing import import_file
from tests.annotation.dataset_factories import category, gold, post, teacher, text_in_split

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"
pytestmark = pytest.mark.django_db


def _export_bytes(version) -> dict[str, bytes]:
    return {name: b"".join(dataset_export_lines(version, name)) for name in EXPORT_FILES}


def _three_gold():
    gold("my SK2 essence > la mer tbh", [("SK2", "SK-II", "skincare"), ("la mer", "La Mer", "skincare")])
    gold("new Fenty gloss 💄 and 雪花秀 cream", [("Fenty", "Fenty Beauty", "makeup"), ("雪花秀", "Sulwhasoo", "skincare")])
    gold("traffic on the M4 again", is_beauty=False)


def test_freeze_snapshots_every_gold_annotation_with_counts_and_sha(make_user):
    _three_gold()
    user = make_user("admin")
    v1 = dataset_freeze_now(user=user, note="seed")
    assert (v1.number, v1.parent, v1.status, v1.created_by, v1.note) == (1, None, "frozen", user, "seed")
    assert v1.items.count() == 3 and v1.counts["gold"] == 3 and v1.counts["spans"] == 4
    assert v1.counts["categories"] == {"makeup": 1, "skincare": 3}
    assert sum(s["beauty"] for s in v1.counts["splits"].values()) == 2
    assert v1.progress_done == v1.progress_total == 3
    # The sha256 is the sha256sum-style listing of the canonical files, so anyone can recompute it.
    files = _export_bytes(v1)
    assert v1.sha256 == version_sha256({n: hashlib.sha256(b).hexdigest() for n, b in files.items()})
    lines = [json.loads(line) for n in ("train.jsonl", "val.jsonl", "test.jsonl") for line in files[n].splitlines()]
    fenty = next(r for r in lines if r["text"].startswith("new Fenty"))
    assert fenty["brands"] == [
        {"start": 4, "end": 9, "text": "Fenty", "brand": "Fenty Beauty", "category": "makeup"},
        {"start": 22, "end": 25, "text": "雪花秀", "brand": "Sulwhasoo", "category": "skincare"},
    ]
    assert fenty["kind"] == "gold" and fenty["platform"] == "tiktok"
    v2 = dataset_freeze_now(note="again")
    assert v2.parent == v1 and v2.number == 2
    assert v2.sha256 == v1.sha256  # nothing changed: same data, same hash
    assert v2.counts["diff_to_parent"]["posts"] == {"added": 0, "removed": 0, "changed": 0, "unchanged": 3}


def test_editing_gold_after_freezing_changes_only_later_versions(tmp_path):
    _three_gold()
    v1 = dataset_freeze_now()
    dataset_version_export(version=v1, outdir=tmp_path / "a")
    before = {n: (tmp_path / "a" / n).read_bytes() for n in EXPORT_FILES}

    span = Span.objects.get(text="SK2")
    span.end, span.text, span.category = span.end + 8, "SK2 essence", category("fragrance")
    span.save()
    Post.objects.filter(platform="tiktok").update(platform="instagram", external_id="renamed")
    Annotation.objects.filter(post__text__startswith="traffic").update(is_beauty=True)

    v1.refresh_from_db()
    dataset_version_export(version=v1, outdir=tmp_path / "b")
    assert {n: (tmp_path / "b" / n).read_bytes() for n in EXPORT_FILES} == before
    assert verify_directory(tmp_path / "b") and read_manifest(tmp_path / "b")["sha256"] == v1.sha256

    v2 = dataset_freeze_now()
    assert v2.sha256 != v1.sha256
    assert DatasetItem.objects.get(version=v2, text__startswith="my SK2").spans[0]["text"] == "SK2 essence"
    assert DatasetItem.objects.get(version=v1, text__startswith="my SK2").spans[0]["text"] == "SK2"
    diff = v2.counts["diff_to_parent"]
    assert diff["posts"] == {"added": 0, "removed": 0, "changed": 2, "unchanged": 1}
    # Same start, other end: the old span is gone and a new one is there.
    assert diff["spans"] == {"added": 1, "removed": 1, "changed": 0}
    assert diff["by_category"] == {"fragrance": {"added": 1, "removed": 0, "changed": 0},
                                   "skincare": {"added": 0, "removed": 1, "changed": 0}}


def test_a_frozen_version_refuses_every_orm_write():
    _three_gold()
    v1 = dataset_freeze_now()
    item = v1.items.first()
    original = list(v1.items.order_by("id").values_list("id", "spans", "split", "text"))
    attempts = [
        lambda: (setattr(item, "spans", []), item.save()),
        lambda: item.delete(),
        lambda: DatasetItem.objects.filter(version=v1).update(spans=[]),
        lambda: DatasetItem.objects.filter(pk=item.pk).delete(),
        lambda: DatasetItem.objects.bulk_update([item], ["spans"]),
        lambda: DatasetVersion.objects.bulk_update([v1], ["note"]),
        lambda: DatasetItem.objects.bulk_create([DatasetItem(version=v1, post=post("sneaky"), split="train",
                                                             text="sneaky")]),
        lambda: DatasetItem.objects.create(version=v1, post=post("sneaky too"), split="train", text="x"),
        lambda: (setattr(v1, "note", "rewritten"), v1.save()),
        lambda: v1.delete(),
        lambda: DatasetVersion.objects.filter(pk=v1.pk).update(sha256="0" * 64),
        lambda: DatasetVersion.objects.all().delete(),
    ]
    for attempt in attempts:
        with pytest.raises(DatasetVersionFrozen):
            attempt()
    assert list(v1.items.order_by("id").values_list("id", "spans", "split", "text")) == original
    fresh = DatasetVersion.objects.get(pk=v1.pk)
    assert (fresh.note, fresh.sha256) == ("", v1.sha256)


def test_a_post_keeps_its_split_across_versions(settings):
    first = [gold(f"post number {i} about Glossier", [("Glossier", "Glossier", "makeup")]) for i in range(150)]
    v1 = dataset_freeze_now()
    [gold(f"later post {i} with Rare Beauty", [("Rare Beauty", "Rare Beauty", "makeup")]) for i in range(60)]
    Annotation.objects.filter(post=first[0]).delete()  # a gold annotation withdrawn
    v2 = dataset_freeze_now()
    s1 = dict(v1.items.values_list("post_id", "split"))
    s2 = dict(v2.items.values_list("post_id", "split"))
    assert len(s1) == 150 and len(s2) == 209 and first[0].pk not in s2
    assert all(s2[p] == s for p, s in s1.items() if p in s2)
    for item in v2.items.select_related("post"):
        assert item.split == split_for(item.post.content_hash, {"train": 0.8, "val": 0.1, "test": 0.1})
    shares = {s: list(s2.values()).count(s) / len(s2) for s in ("train", "val", "test")}
    assert 0.7 < shares["train"] < 0.9 and shares["val"] > 0.03 and shares["test"] > 0.03

    # A project that changes its ratios: existing posts keep their split, new posts follow the new ratios.
    settings.DATASET_SPLIT_RATIOS = {"train": 0.2, "val": 0.4, "test": 0.4}
    new = [gold(f"third wave {i} with Milk Makeup") for i in range(40)]
    v3 = dataset_freeze_now()
    s3 = dict(v3.items.values_list("post_id", "split"))
    assert all(s3[p] == s for p, s in s2.items())
    assert v3.split_ratios == {"train": 0.2, "val": 0.4, "test": 0.4}
    assert [s3[p.pk] for p in new] == [split_for(p.content_hash, settings.DATASET_SPLIT_RATIOS) for p in new]


def test_silver_is_the_latest_valid_teacher_answer_of_posts_without_gold_and_train_only():
    gold("gold post with Dior", [("Dior", "Dior", "makeup")])
    in_train = post(text_in_split("train"))
    teacher(in_train, [("Glossier", "Glossier", "makeup")], prompt="p1", reasoning="old answer")
    newest = teacher(in_train, [("Glossier", "Glossier", "skincare")], prompt="p2", reasoning="Glossier is a brand")
    in_test = post(text_in_split("test"))
    teacher(in_test, [("Glossier", "Glossier", "makeup")])
    in_val = post(text_in_split("val"))
    teacher(in_val, [("Glossier", "Glossier", "makeup")])
    refused = post(text_in_split("train"))
    teacher(refused, status=Prediction.Status.REFUSED)
    broken = post(text_in_split("train"))
    teacher(broken, spans=[{"start": 0, "end": 3, "text": "not what the offsets say"}])
    has_gold = gold(text_in_split("train", "gold also has a teacher answer {} Glossier"))
    teacher(has_gold, [("Glossier", "Glossier", "makeup")])

    v1 = dataset_freeze_now()
    silver = list(v1.items.filter(kind="silver"))
    assert [s.post_id for s in silver] == [in_train.pk]
    s = silver[0]
    assert (s.split, s.teacher_model, s.prompt_version, s.reasoning) == ("train", newest.model_version, "p2",
                                                                         "Glossier is a brand")
    assert s.spans[0]["category"] == "skincare"
    assert v1.counts["silver_left_out"] == {"val": 1, "test": 1}
    assert v1.counts["silver_invalid"] == 1
    assert v1.items.get(post=has_gold).kind == "gold"
    line = json.loads(b"".join(dataset_export_lines(v1, "silver.jsonl")))
    assert (line["kind"], line["teacher_model"], line["prompt_version"]) == ("silver", "gemini-2.5-flash", "p2")
    assert not v1.items.filter(kind="silver").exclude(split="train").exists()
    # Gold later arrives for the silver post: v2 takes the gold and the diff says so.
    Annotation.objects.create(post=in_train, annotator=has_gold.annotations.get().annotator, is_gold=True,
                              is_beauty=True, status=Annotation.Status.ACCEPTED)
    v2 = dataset_freeze_now()
    assert v2.items.get(post=in_train).kind == "gold"
    assert v2.counts["diff_to_parent"]["silver_to_gold"] == 1


def test_round_trip_import_freeze_export_gives_identical_spans(kb, tmp_path):
    batch = import_file(path=DEMO / "gold_seed.jsonl")
    assert batch.status == "done" and batch.error_count == 0
    version = dataset_freeze_now()
    out = tmp_path / "v1"
    dataset_version_export(version=version, outdir=out)
    exported = {}
    for name in ("train.jsonl", "val.jsonl", "test.jsonl"):
        for record in read_jsonl(out / name):
            exported[record["id"]] = record
            assert split_for(content_hash(record["text"]), version.split_ratios) == name.removesuffix(".jsonl")
    originals = {}
    for record in read_jsonl(DEMO / "gold_seed.jsonl"):
        # The seed repeats one text under two ids: the import keeps the first post and its gold.
        if all(r["text"] != record["text"] for r in originals.values()):
            originals[record["id"]] = record
    assert exported.keys() == originals.keys()
    for key, original in originals.items():
        got = exported[key]
        assert (got["text"], got["is_beauty"], got["platform"], got["posted_at"]) == (
            original["text"], original["is_beauty"], original["platform"], original["posted_at"])
        assert got["brands"] == [
            {k: b[k] for k in ("start", "end", "text", "brand", "category")} for b in original["brands"]
        ], key
    assert content_hash("x 💄") == import_content_hash("x 💄")


def test_export_dir_is_written_once_and_verified(settings, tmp_path):
    settings.DATASETS_DIR = tmp_path / "datasets"
    _three_gold()
    v1 = dataset_freeze_now()
    path = dataset_version_export_dir(version=v1)
    assert path == tmp_path / "datasets" / "v1" and verify_directory(path)
    manifest = read_manifest(path)
    assert (manifest["version"], manifest["sha256"], manifest["counts"]["gold"]) == (1, v1.sha256, 3)
    (path / "train.jsonl").write_bytes(b"tampered\n")
    assert not verify_directory(path)
    assert verify_directory(dataset_version_export_dir(version=v1))  # a damaged copy is rewritten


def test_freezing_guards():
    with pytest.raises(NothingToFreeze):
        dataset_version_create()
    assert not DatasetVersion.objects.exists()
    _three_gold()
    pending = dataset_version_create(note="in progress")
    with pytest.raises(FreezeInProgress):
        dataset_version_create()
    assert dataset_version_freeze(version=pending).status == "frozen"
    assert dataset_version_freeze(version=pending).sha256 == pending.sha256  # a second run is a no-op
    assert dataset_version_create().number == 2


def test_commands_freeze_print_the_number_and_export(tmp_path, capsys):
    _three_gold()
    call_command("freeze_dataset", "--note", "from the command line")
    out = capsys.readouterr().out
    assert out.strip() == "1"
    assert DatasetVersion.objects.get(number=1).note == "from the command line"
    call_command("export_dataset", "1", str(tmp_path / "out"))
    assert "verified" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([*EXPORT_FILES, "manifest.json"])
    assert sum(1 for n in EXPORT_FILES for _ in read_jsonl(tmp_path / "out" / n)) == 3


def test_diff_between_any_two_versions_per_category():
    a = gold("Dior and Chanel today", [("Dior", "Dior", "makeup"), ("Chanel", "Chanel", "fragrance")])
    gold("only Nars here", [("Nars", "NARS", "makeup")])
    v1 = dataset_freeze_now()
    span = Span.objects.get(annotation__post=a, text="Chanel")
    span.category = category("skincare")
    span.save()
    Annotation.objects.filter(post__text="only Nars here").delete()
    gold("fresh Rhode post", [("Rhode", "Rhode", "skincare")])
    v2 = dataset_freeze_now()
    diff = dataset_diff(v1, v2)
    assert diff["posts"] == {"added": 1, "removed": 1, "changed": 1, "unchanged": 0}
    assert diff["spans"] == {"added": 1, "removed": 1, "changed": 1}
    assert diff["by_category"] == {"makeup": {"added": 0, "removed": 1, "changed": 0},
                                   "skincare": {"added": 1, "removed": 0, "changed": 1}}
    assert diff["by_kind"] == {"gold": {"added": 1, "removed": 1, "changed": 1}}
    assert (diff["from"], diff["to"]) == (1, 2)
    assert dataset_diff(None, v1)["posts"]["added"] == 2


def test_a_failed_freeze_leaves_no_items_and_says_why(monkeypatch):
    import annotation.services.datasets as datasets

    _three_gold()

    def disk_full(version):
        raise OSError("No space left on device")

    monkeypatch.setattr(datasets, "_hash_export", disk_full)
    with pytest.raises(OSError):
        dataset_freeze_now()
    failed = DatasetVersion.objects.get()
    assert (failed.status, failed.items.count()) == ("failed", 0)
    assert "No space left" in failed.error
    monkeypatch.undo()
    v2 = dataset_freeze_now()
    assert (v2.number, v2.parent, v2.status, v2.items.count()) == (2, None, "frozen", 3)
    failed.delete()  # a failed version is not evidence; it may go
