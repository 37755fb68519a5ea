"""An admin in a real browser: import a file with bad rows, freeze a dataset version, train a generation on
a tiny backbone while the page shows its progress, promote it, and cancel another mid-training.

Freezing and training run in a real Celery worker (the filesystem broker, the test database), as in
`make run`; the backbone is a 2-layer Qwen2 with hidden size 64, so a training takes seconds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from annotation.models import Annotation, DatasetItem, DatasetVersion, ImportBatch, Post
from annotation.services.datasets import dataset_freeze_now
from modeling.models import ModelGeneration
from tests.annotation import editor_factories as f
from tests.annotation.dataset_factories import gold, teacher, text_in_split
from tests.browser.conftest import login
from tests.modeling.student_factories import build_tiny_qwen2

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SOCIAL = [
    ("my #{} night serum from esteelauder is the best ✨", [("esteelauder", "Estée Lauder", "skincare")]),
    ("Got the new @cerave cleanser {} and it is so gentle", [("cerave", "CeraVe", "skincare")]),
    ("maybelline mascara {} vs l'oreal which one?", [("maybelline", "Maybelline", "makeup")]),
    ("weather is nice today {} going to the park", []),
    ("I love my SK2 essence {} and La Mer cream", [("SK2", "SK-II", "skincare"), ("La Mer", "La Mer", "skincare")]),
]
WORKER_TIMEOUT_MS = 90_000  # the worker's first task imports torch and transformers


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> str:
    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2-browser"))


@pytest.fixture
def models_dir(tmp_path, monkeypatch, settings) -> Path:
    """A fresh models folder for this test, shared with the worker: generation numbers restart in every
    test, and a gen-1 folder left by another test (its checkpoint) would be resumed from."""
    path = tmp_path / "models"
    monkeypatch.setenv("MODELS_DIR", str(path))
    # The int8/AWQ export after training has its own tests; here it would only keep the row "exporting".
    monkeypatch.setenv("EXPORT_AFTER_TRAINING", "0")
    settings.MODELS_DIR = path
    return path


@pytest.fixture
def worker(models_dir, celery_worker_process):
    """A real Celery worker started after `models_dir` set its environment."""
    return celery_worker_process


def training_set(train_copies: int) -> DatasetVersion:
    """Gold posts in train and test only: with no val split there is no early stopping, so a training runs
    all its epochs (epochs x ceil(train posts / 16) steps) and takes a predictable time."""
    f.mini_kb()
    for split in ["train"] * train_copies + ["test"]:
        for template, mentions in SOCIAL:
            gold(text_in_split(split, template), mentions, is_beauty=bool(mentions))
    return dataset_freeze_now(note="for the browser")


def nav(page, name: str):
    return page.locator("nav.mainnav").get_by_role("link", name=name, exact=True)


def badge(page):
    return page.locator("#progress .badge").first


def step_of(page) -> tuple[int, int]:
    text = page.locator("#progress .row .muted").first.inner_text()
    m = re.search(r"step (\d+) of (\d+)", text)
    assert m, text
    return int(m.group(1)), int(m.group(2))


def start_training(page, base_url: str, backbone: str, epochs: int) -> ModelGeneration:
    page.goto(f"{base_url}/models/")
    page.get_by_label("Dataset version").select_option("1")
    page.get_by_label("Backbone").fill(backbone)
    page.get_by_label("Epochs").fill(str(epochs))
    page.get_by_role("button", name="Train").click()
    page.wait_for_url("**/models/gen-1/")
    expect(page.locator(".messages")).to_contain_text("gen-1 queued on the gpu queue.")
    return ModelGeneration.objects.get(number=1)


def test_admin_imports_a_file_and_sees_the_bad_rows_by_line(live_server, browser_context, make_user, shot):
    f.mini_kb()
    make_user("admin", username="ada")
    lines = [
        {"id": "tt-1", "platform": "tiktok", "text": "my SK2 essence > la mer tbh", "is_beauty": True,
         "brands": [{"start": 3, "end": 6, "text": "SK2", "brand": "SK-II", "category": "skincare"},
                    {"start": 17, "end": 23, "text": "la mer", "brand": "La Mer", "category": "skincare"}]},
        "{oops",
        {"id": "tt-3", "text": ""},
        {"id": "tt-4", "text": "glossier balm dotcom", "brands": [{"start": 0, "end": 99}]},
        "",
        {"id": "ig-6", "platform": "instagram", "text": "new Fenty gloss drop, thoughts?"},
        {"id": "tt-1-again", "text": "my SK2 essence > la mer tbh"},
        {"id": "tt-8", "text": "x", "brands": [{"start": 0, "end": 1, "category": "perfume"}]},
    ]
    body = "\n".join(line if isinstance(line, str) else json.dumps(line, ensure_ascii=False) for line in lines) + "\n"

    page = browser_context.new_page()
    login(page, live_server.url, "ada")
    nav(page, "Import").click()
    page.set_input_files("input[name=file]", files=[
        {"name": "week-12.jsonl", "mimeType": "application/x-ndjson", "buffer": body.encode("utf-8")}])
    page.get_by_role("button", name="Import", exact=True).click()
    page.wait_for_url(re.compile(r"/import/\d+/$"))

    status = page.locator("#batch-status")
    expect(status.locator(".badge")).to_have_text("done")
    errors = status.locator("ul.errors li")
    expect(errors).to_have_count(4)
    expect(errors.nth(0)).to_contain_text("line 2: invalid JSON")
    expect(errors.nth(1)).to_have_text("line 3: missing or empty 'text'")
    expect(errors.nth(2)).to_have_text("line 4: brands[0]: offsets 0:99 outside the text (length 20)")
    expect(errors.nth(3)).to_have_text("line 8: unknown category 'perfume'")
    # Posts created, reposts (tt-1-again: tt-1's words under another id), already present, gold
    # annotations, gold spans, bad rows.
    expect(status.locator("table tr").nth(1).locator("td")).to_have_text(["2", "1", "0", "1", "2", "4"])
    shot(page, "admin-1-import-errors", full_page=True)

    batch = ImportBatch.objects.get()
    assert (batch.status, batch.filename, batch.created_by.username) == ("done", "week-12.jsonl", "ada")
    assert [e["line"] for e in batch.errors] == [2, 3, 4, 8] and batch.error_count == 4
    assert sorted(Post.objects.values_list("external_id", "platform")) == [("ig-6", "instagram"), ("tt-1", "tiktok")]
    gold_annotation = Annotation.objects.get(is_gold=True)
    assert gold_annotation.post.external_id == "tt-1" and gold_annotation.is_beauty is True
    assert sorted(gold_annotation.spans.values_list("start", "end", "brand__canonical_name", "category__slug")) == [
        (3, 6, "SK-II", "skincare"), (17, 23, "La Mer", "skincare")]
    assert not Path(batch.stored_path).exists()  # a finished upload is not kept

    # The import history lists the batch with the same figures.
    page.get_by_role("link", name="← Imports").click()
    row = page.locator("table tr", has=page.get_by_role("link", name=str(batch)))
    expect(row.locator("td")).to_have_text([str(batch), re.compile(r"\d{4}-\d\d-\d\d"), "done", "2", "1", "0", "1", "4"])


def test_admin_freezes_a_dataset_version(live_server, browser_context, make_user, worker, shot):
    for split, n in (("train", 3), ("val", 1), ("test", 1)):
        for _ in range(n):
            gold(text_in_split(split), [("Glossier", "Glossier", "makeup")])
    silver_post = f.post("teacher only: the new Rhode peptide balm")
    teacher(silver_post, [("Rhode", "Rhode", "skincare")])
    make_user("admin", username="ada")

    page = browser_context.new_page()
    login(page, live_server.url, "ada")
    nav(page, "Datasets").click()
    expect(page.locator("table")).to_contain_text("No version yet")
    page.get_by_label("Note").fill("first cut, Glossier only")
    page.get_by_role("button", name="Freeze a new version").click()
    page.wait_for_url("**/datasets/v1/")
    # The page polls the version's row until the worker has frozen it, then shows the files.
    status = page.locator("#version-status .badge").first
    expect(status).to_have_text("frozen", timeout=WORKER_TIMEOUT_MS)
    expect(page.locator("#version-status")).to_contain_text("first cut, Glossier only")
    splits = {row.locator("td").nth(0).inner_text(): row.locator("td").all_inner_texts()
              for row in page.locator("h2:has-text('Splits') + table tr:has(td)").all()}
    assert {name: cells[1:3] for name, cells in splits.items()} == {
        "train": ["3", "1"], "val": ["1", "0"], "test": ["1", "0"]}
    expect(page.locator("#version-status a.btn", has_text="train.jsonl")).to_be_visible()
    shot(page, "admin-2-dataset-frozen", full_page=True)

    version = DatasetVersion.objects.get()
    assert (version.number, version.status, version.created_by.username) == (1, "frozen", "ada")
    assert version.note == "first cut, Glossier only" and version.frozen_at is not None
    assert (version.counts["gold"], version.counts["silver"]) == (5, 1)
    assert sorted(DatasetItem.objects.filter(version=version).values_list("kind", "split")) == sorted(
        [("gold", "train")] * 3 + [("gold", "val"), ("gold", "test"), ("silver", "train")])
    expect(page.locator("#version-status code").first).to_have_text(version.sha256)

    # The manifest download carries the same hash.
    with page.expect_download() as download_info:
        page.locator("#version-status a.btn", has_text="manifest.json").click()
    manifest = json.loads(Path(download_info.value.path()).read_text(encoding="utf-8"))
    assert manifest["sha256"] == version.sha256 and manifest["version"] == 1

    # The list shows the version with its figures.
    page.get_by_role("link", name="← Dataset versions").click()
    row = page.locator("table tr", has=page.get_by_role("link", name="v1"))
    expect(row).to_contain_text("frozen")
    expect(row.locator("td").nth(4)).to_have_text("5")


def test_admin_trains_a_generation_watches_it_and_promotes_it(live_server, browser_context, make_user, worker,
                                                              tiny_backbone, shot):
    training_set(train_copies=10)  # 50 train posts: 4 steps an epoch, 400 in all (seconds)
    make_user("admin", username="ada")
    page = browser_context.new_page()
    login(page, live_server.url, "ada")
    generation = start_training(page, live_server.url, tiny_backbone, epochs=100)
    assert generation.status in ("queued", "training")  # the worker may have taken it already
    assert (generation.base_model, generation.config["epochs"], generation.created_by.username) == (
        tiny_backbone, 100.0, "ada")

    # Record every state the polled card shows, without reloading the page.
    page.evaluate("""() => {
        window.seen = [];
        const note = () => {
            const card = document.querySelector('#progress');
            if (!card) return;
            const bar = card.querySelector('[role=progressbar]');
            window.seen.push([card.querySelector('.badge').textContent.trim(),
                              card.querySelector('.row .muted').textContent.trim(),
                              bar ? Number(bar.getAttribute('aria-valuenow')) : null]);
        };
        note();
        new MutationObserver(note).observe(document.querySelector('main'), {childList: true, subtree: true});
    }""")
    expect(badge(page)).to_have_text(re.compile("queued|training"))
    expect(page.locator("#progress [role=progressbar]")).to_be_visible()
    expect(page.locator("#progress")).to_have_attribute("hx-trigger", "every 2s")
    expect(page.locator("#progress [role=progressbar]")).to_have_attribute(
        "aria-valuenow", re.compile(r"^[1-9]\d?$"), timeout=WORKER_TIMEOUT_MS)
    shot(page, "admin-3-training-progress", full_page=True)
    expect(badge(page)).to_have_text("ready", timeout=WORKER_TIMEOUT_MS)
    seen = page.evaluate("window.seen")
    assert page.evaluate("typeof window.seen") == "object"  # still the same page: htmx swapped the card
    mid = [s for s in seen if s[0] == "training" and s[2] is not None and 0 < s[2] < 100]
    assert mid, seen
    step, total = step_of(page)
    assert step == total > 100
    expect(page.locator("#progress")).not_to_have_attribute("hx-trigger", "every 2s")  # polling stopped
    expect(page.locator("#progress svg")).to_be_visible()  # the loss curve

    generation.refresh_from_db()
    assert generation.status == "ready" and generation.step == generation.total_steps == total
    assert generation.metrics["test_posts"] == len(SOCIAL) and "span_f1" in generation.metrics["student"]
    assert len(generation.loss_history) > 2 and Path(generation.artifact_path, "manifest.json").exists()

    # The action buttons are drawn once with the page (they are outside the polled card): reload for Promote.
    page.reload()
    expect(page.get_by_role("cell", name="span_f1", exact=True)).to_be_visible()  # the side-by-side table
    page.get_by_role("button", name="Promote", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("gen-1: promote done.")
    expect(badge(page)).to_have_text("promoted")
    expect(page.locator("#progress")).to_contain_text("Promotion: span F1")
    shot(page, "admin-4-promoted", full_page=True)
    generation.refresh_from_db()
    assert generation.status == "promoted" and generation.promoted_at is not None
    assert generation.promotion_note.startswith("span F1 ")

    page.get_by_role("link", name="← Model generations").click()
    row = page.locator("table tr", has=page.get_by_role("link", name="gen-1"))
    expect(row.locator(".badge")).to_have_text("promoted")
    expect(row.locator("td").nth(4)).to_have_text(re.compile(r"^\d(\.\d+)?$"))  # its test span F1


def test_admin_cancels_a_training_mid_run(live_server, browser_context, make_user, worker, tiny_backbone, shot):
    training_set(train_copies=30)  # 150 train posts, 100 epochs: minutes of training if nobody cancels
    make_user("admin", username="ada")
    page = browser_context.new_page()
    login(page, live_server.url, "ada")
    generation = start_training(page, live_server.url, tiny_backbone, epochs=100)

    # Wait for the polled card to show steps being made, then reload to get the buttons for that state.
    expect(page.locator("#progress [role=progressbar]")).to_have_attribute(
        "aria-valuenow", re.compile(r"^[1-9]\d?$"), timeout=WORKER_TIMEOUT_MS)
    page.reload()
    expect(badge(page)).to_have_text("training")
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator(".messages")).to_contain_text("gen-1: cancel done.")
    expect(badge(page)).to_have_text("cancelled", timeout=30_000)  # the run stops at its next step
    page.reload()  # the buttons are drawn with the page, outside the polled card
    expect(badge(page)).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Resume from last checkpoint")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.get_by_role("button", name="Promote", exact=True)).to_have_count(0)
    shot(page, "admin-5-cancelled", full_page=True)

    generation.refresh_from_db()
    assert generation.status == "cancelled" and generation.cancel_requested
    assert 0 < generation.step < generation.total_steps and generation.finished_at is not None
    assert generation.metrics == {} or "student" not in generation.metrics
    step, total = step_of(page)
    assert (step, total) == (generation.step, generation.total_steps)
